import { describe, expect, it } from "vitest"
import { averageBySteps, renderCompareReport, summarise, summaryText } from "../../packages/cli/src/run/compare.js"
import type { SeedResult } from "../../packages/cli/src/run/compare.js"
import type { ReportRecord } from "../../packages/cli/src/report/html.js"

/** Held-out accuracy and pass@4 of each seed at steps 0, 2, 4, and a train record at every step. */
const curves: Record<string, ReadonlyArray<Record<number, { acc: number; pass: number }>>> = {
  grpo: [
    { 0: { acc: 0.2, pass: 0.5 }, 2: { acc: 0.3, pass: 0.6 }, 4: { acc: 0.5, pass: 0.7 } },
    { 0: { acc: 0.1, pass: 0.4 }, 2: { acc: 0.4, pass: 0.8 }, 4: { acc: 0.45, pass: 0.9 } },
    { 0: { acc: 0.25, pass: 0.3 }, 2: { acc: 0.2, pass: 0.7 }, 4: { acc: 0.6, pass: 0.75 } },
  ],
  gtpo: [
    { 0: { acc: 0.3, pass: 0.5 }, 2: { acc: 0.5, pass: 0.65 }, 4: { acc: 0.7, pass: 0.8 } },
    { 0: { acc: 0.0, pass: 0.2 }, 2: { acc: 0.35, pass: 0.6 }, 4: { acc: 0.65, pass: 0.95 } },
    // This seed stopped before its last evaluation: the band at step 4 covers the other two.
    { 0: { acc: 0.15, pass: 0.45 }, 2: { acc: 0.6, pass: 0.5 } },
  ],
}

const recordsOf = (curve: Record<number, { acc: number; pass: number }>): Array<ReportRecord> => [
  ...Object.entries(curve).map(([step, v]) => ({
    step: Number(step),
    phase: "eval",
    metrics: { "outcome/accuracy": v.acc, "eval/pass@4": v.pass, "eval/pass@1": v.acc },
  })),
  ...[1, 2, 3, 4].map((step) => ({ step, phase: "train", metrics: { "reward/mean": step / 10 } })),
]

const seedResult = (curve: Record<number, { acc: number; pass: number }>, outcomes: Array<number>, correct: Array<number>): SeedResult => ({
  accuracy: outcomes.reduce((a, b) => a + b, 0) / outcomes.length,
  outcomes,
  sampled: { k: 4, correct },
  passAtK: correct.filter((c) => c > 0).length / correct.length,
  turns: 2,
  toolErrorRate: 0.1,
  stepSeconds: 1,
  records: recordsOf(curve),
})

// Per seed: greedy outcomes and correct samples (of 4) on three problems.
const results = new Map<string, Array<SeedResult>>([
  ["grpo", curves.grpo!.map((curve, s) => seedResult(curve, [[1, 0, 0], [0, 1, 0], [1, 1, 0]][s]!, [[4, 0, 1], [2, 1, 0], [3, 3, 0]][s]!))],
  ["gtpo", curves.gtpo!.map((curve, s) => seedResult(curve, [[1, 1, 0], [1, 0, 1], [1, 1, 1]][s]!, [[4, 2, 1], [2, 1, 1], [4, 4, 2]][s]!))],
])

/** Numbers of a whitespace-separated attribute. */
const numbers = (text: string): Array<number> => text.split(" ").map(Number)

interface Band {
  readonly steps: Array<number>
  readonly lo: Array<number>
  readonly hi: Array<number>
  readonly points: Array<readonly [number, number]>
  readonly fill: string
}

/** The band paths of a rendered report by run and metric. */
const bandsIn = (html: string): Map<string, Band> => {
  const bands = new Map<string, Band>()
  const pattern =
    /<path class="band" data-run="([^"]*)" data-metric="([^"]*)" data-steps="([^"]*)" data-lo="([^"]*)" data-hi="([^"]*)" d="([^"]*)" fill="([^"]*)"/g
  for (const m of html.matchAll(pattern)) {
    const points = [...m[6]!.matchAll(/[ML]([\d.-]+),([\d.-]+)/g)].map((p) => [Number(p[1]), Number(p[2])] as const)
    bands.set(`${m[1]} ${m[2]}`, { steps: numbers(m[3]!), lo: numbers(m[4]!), hi: numbers(m[5]!), points, fill: m[7]! })
  }
  return bands
}

/** The chart (one svg) of a metric, by its title. */
const chartIn = (html: string, title: string): string => {
  const start = html.indexOf(`aria-label="${title}"`)
  expect(start, `no chart titled ${title}`).toBeGreaterThan(-1)
  return html.slice(start, html.indexOf("</svg>", start))
}

describe("compare report: mean curves with a min–max band over seeds", () => {
  const summaries = summarise(["grpo", "gtpo"], results)
  const html = renderCompareReport({ seeds: 3, summaries, results })

  it("draws one band per recipe and metric whose bounds are the per-seed min and max at each evaluated step", () => {
    const bands = bandsIn(html)
    for (const recipe of ["grpo", "gtpo"]) {
      for (const [metric, pick] of [["outcome/accuracy", "acc"], ["eval/pass@4", "pass"]] as const) {
        // Computed here from the seeds' curves, independently of the report code.
        const steps = [0, 2, 4]
        const valuesAt = (step: number) => curves[recipe]!.flatMap((curve) => (curve[step] === undefined ? [] : [curve[step]![pick]]))
        const band = bands.get(`${recipe} ${metric}`)
        expect(band, `${recipe} ${metric}`).toBeDefined()
        expect(band!.steps).toEqual(steps)
        expect(band!.lo).toEqual(steps.map((step) => Math.min(...valuesAt(step))))
        expect(band!.hi).toEqual(steps.map((step) => Math.max(...valuesAt(step))))
      }
    }
    // gtpo's third seed has no step 4: the band there spans the other two seeds only.
    expect(bands.get("gtpo outcome/accuracy")!.lo.at(-1)).toBe(0.65)
    expect(bands.get("gtpo outcome/accuracy")!.hi.at(-1)).toBe(0.7)
  })

  it("draws each band around its recipe's mean line: upper edge above, lower edge below, at the same steps", () => {
    const chart = chartIn(html, "Held-out accuracy")
    const chartBands = bandsIn(chart)
    expect([...chartBands.keys()].sort()).toEqual(["grpo outcome/accuracy", "gtpo outcome/accuracy"])
    for (const [key, band] of chartBands) {
      const line = new RegExp(`<path d="([^"]*)" fill="none" stroke="${band.fill}"`).exec(chart)
      expect(line, key).not.toBeNull()
      const linePoints = [...line![1]!.matchAll(/[ML]([\d.-]+),([\d.-]+)/g)].map((p) => [Number(p[1]), Number(p[2])] as const)
      const n = band.steps.length
      expect(linePoints).toHaveLength(n)
      expect(band.points).toHaveLength(2 * n)
      const upper = band.points.slice(0, n)
      const lower = band.points.slice(n).reverse()
      linePoints.forEach(([x, y], i) => {
        expect(upper[i]![0]).toBe(x)
        expect(lower[i]![0]).toBe(x)
        // SVG y grows downwards: the max is drawn above (smaller y) the mean, the min below.
        expect(upper[i]![1]).toBeLessThanOrEqual(y)
        expect(lower[i]![1]).toBeGreaterThanOrEqual(y)
      })
      // Somewhere the seeds disagree, so the band has width.
      expect(upper.some(([, y], i) => y < lower[i]![1])).toBe(true)
    }
    // The line is the mean over seeds.
    const mean = averageBySteps(results.get("grpo")!.map((r) => r.records)).find((r) => r.phase === "eval" && r.step === 4)
    expect(mean?.metrics["outcome/accuracy"]).toBeCloseTo((0.5 + 0.45 + 0.6) / 3, 12)
  })

  it("says in the legend what the band is, and charts pass@k", () => {
    expect(html).toMatch(/lines: mean; shaded band: min–max over seeds/)
    expect(chartIn(html, "Held-out pass@4 (any of 4 samples correct)")).toMatch(/class="band"/)
    // Training curves get bands too (here every seed logged the same reward, so lo = hi).
    const reward = bandsIn(html).get("grpo reward/mean")
    expect(reward?.lo).toEqual(reward?.hi)
  })
})

describe("compare report with one evaluation per run", () => {
  it("draws the seeds' min and max at that step as a bar", () => {
    const finalOnly = new Map(
      [...results].map(([name, list]) => [name, list.map((r): SeedResult => ({ ...r, records: r.records.filter((x) => x.phase === "eval" && x.step === 2) }))]),
    )
    const html = renderCompareReport({ seeds: 3, summaries: summarise(["grpo", "gtpo"], finalOnly), results: finalOnly })
    const band = bandsIn(html).get("gtpo outcome/accuracy")
    expect(band?.steps).toEqual([2])
    expect(band?.lo).toEqual([0.35])
    expect(band?.hi).toEqual([0.6])
    expect(html).toMatch(/data-run="gtpo" data-metric="outcome\/accuracy"[^>]*stroke="#d62728" stroke-opacity="0.35"/)
  })
})

describe("compare summary: pass@k beside greedy accuracy", () => {
  const summaries = summarise(["grpo", "gtpo"], results)

  it("gives pass@k and pass@1 over seeds and problems with intervals, and pass@k's paired difference", () => {
    const [grpo, gtpo] = summaries
    // grpo's correct counts [4,0,1] [2,1,0] [3,3,0]: any correct 2 + 2 + 2 of 9; mean correctness (5 + 3 + 6) / 4 / 9.
    expect(grpo!.pass!.k).toBe(4)
    expect(grpo!.pass!.interval.mean).toBeCloseTo(6 / 9, 12)
    expect(grpo!.pass!.passAt1.mean).toBeCloseTo(14 / 36, 12)
    expect(grpo!.pass!.difference).toBeUndefined()
    // gtpo: [4,2,1] [2,1,1] [4,4,2]: every problem has a correct sample.
    expect(gtpo!.pass!.interval.mean).toBe(1)
    expect(gtpo!.pass!.passAt1.mean).toBeCloseTo(21 / 36, 12)
    expect(gtpo!.pass!.difference?.against).toBe("grpo")
    expect(gtpo!.pass!.difference?.mean).toBeCloseTo(1 - 6 / 9, 12)
    for (const s of summaries) {
      const ci = s.pass!.interval
      expect(ci.lo).toBeLessThanOrEqual(ci.mean)
      expect(ci.hi).toBeGreaterThanOrEqual(ci.mean)
    }
    expect(grpo!.interval.mean).toBeCloseTo(4 / 9, 12)
  })

  it("prints pass@k and pass@1 with their intervals in the summary table and the report", () => {
    const text = summaryText(summaries, 3)
    expect(text).toMatch(/pass@4 and pass@1 from 4 samples per problem/)
    expect(text).toMatch(/pass@4 \[95% CI\]\s+pass@1 \[95% CI\]/)
    expect(text).toMatch(/gtpo\s+0\.778 \[\d\.\d{3}, \d\.\d{3}\]\s+\+0\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]\s+1\.000 \[1\.000, 1\.000\]\s+0\.583 \[/)
    const html = renderCompareReport({ seeds: 3, summaries, results })
    expect(html).toMatch(/<th>pass@4<\/th><th>95% interval<\/th><th>pass@4 difference vs grpo<\/th>/)
  })

  it("leaves pass@k out when the runs did not sample", () => {
    const greedyOnly = new Map([...results].map(([name, list]) => [name, list.map((r): SeedResult => ({ ...r, sampled: undefined }))]))
    const plain = summarise(["grpo", "gtpo"], greedyOnly)
    expect(plain.every((s) => s.pass === undefined)).toBe(true)
    expect(summaryText(plain, 3)).not.toMatch(/pass@/)
  })
})
