/**
 * report.html: learning curves and a results table in one self-contained file.
 *
 * Charts are inline SVG drawn here (no scripts, no network, no server), so the file
 * opens in any browser and can be attached to an issue. Several runs can be overlaid
 * (the comparison report); each series is a run's values of one metric by step, and a
 * run may carry a spread (e.g. min and max over seeds) drawn as a shaded band around
 * its line.
 *
 * @category constructors
 */

/** One metric record as stored in metrics.jsonl. */
export interface ReportRecord {
  readonly step: number
  readonly phase: string
  readonly metrics: Readonly<Record<string, number>>
}

/** The lower and upper bounds of metrics at one step of one phase (a band around a curve). */
export interface SpreadRecord {
  readonly step: number
  readonly phase: string
  readonly lo: Readonly<Record<string, number>>
  readonly hi: Readonly<Record<string, number>>
}

/** A run to draw. */
export interface ReportRun {
  readonly name: string
  readonly records: ReadonlyArray<ReportRecord>
  /** Bounds drawn as a shaded band around the run's line (absent: no band). */
  readonly spread?: ReadonlyArray<SpreadRecord>
}

/** A chart: which metric of which phase. */
export interface ChartSpec {
  readonly title: string
  readonly metric: string
  readonly phase: string
}

/** The charts of a training report. */
export const defaultCharts: ReadonlyArray<ChartSpec> = [
  { title: "Held-out accuracy", metric: "outcome/accuracy", phase: "eval" },
  { title: "Training accuracy", metric: "outcome/accuracy", phase: "train" },
  { title: "Reward (mean per trajectory)", metric: "reward/mean", phase: "train" },
  { title: "Turns per trajectory", metric: "turns/mean", phase: "train" },
  { title: "Tool-call error rate", metric: "tool/error_rate", phase: "train" },
  { title: "Policy loss", metric: "actor/pg_loss", phase: "train" },
  { title: "Approximate KL (new vs old)", metric: "actor/approx_kl", phase: "train" },
  { title: "Clip fraction", metric: "actor/clip_frac", phase: "train" },
]

const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

const escapeHtml = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const formatNumber = (x: number): string =>
  !Number.isFinite(x) ? String(x) : Math.abs(x) >= 1000 || (Math.abs(x) < 0.001 && x !== 0) ? x.toExponential(2) : x.toFixed(3)

/** A run's band for a chart: [step, lo, hi] by step, where both bounds are finite. */
const bandOf = (spec: ChartSpec, run: ReportRun): Array<readonly [number, number, number]> =>
  (run.spread ?? [])
    .filter((r) => r.phase === spec.phase && Number.isFinite(r.lo[spec.metric]) && Number.isFinite(r.hi[spec.metric]))
    .map((r) => [r.step, r.lo[spec.metric]!, r.hi[spec.metric]!] as const)
    .sort((a, b) => a[0] - b[0])

/**
 * One SVG line chart of a metric over steps, one line per run. A run with a spread
 * gets a shaded band (a closed path, upper bounds left to right, then lower bounds back)
 * beneath its line; the band carries its run, metric, steps and bounds as data
 * attributes, so what it draws can be read back exactly.
 */
export const lineChart = (spec: ChartSpec, runs: ReadonlyArray<ReportRun>): string => {
  const W = 420
  const H = 240
  const pad = { left: 52, right: 12, top: 26, bottom: 30 }
  const series = runs.map((run) =>
    run.records
      .filter((r) => r.phase === spec.phase && Number.isFinite(r.metrics[spec.metric]))
      .map((r) => [r.step, r.metrics[spec.metric]!] as const)
  )
  const bands = runs.map((run) => bandOf(spec, run))
  const points = series.flat()
  if (points.length === 0) return ""
  const xs = points.map(([x]) => x).concat(bands.flat().map(([x]) => x))
  const ys = points.map(([, y]) => y).concat(bands.flat().flatMap(([, lo, hi]) => [lo, hi]))
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)]
  if (x0 === x1) x1 = x0 + 1
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5]
  const sx = (x: number) => pad.left + ((x - x0) / (x1 - x0)) * (W - pad.left - pad.right)
  const sy = (y: number) => H - pad.bottom - ((y - y0) / (y1 - y0)) * (H - pad.top - pad.bottom)
  const shaded = bands
    .map((band, k) => {
      if (band.length === 0) return ""
      const color = palette[k % palette.length]!
      const upper = band.map(([x, , hi], i) => `${i === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(hi).toFixed(1)}`)
      const lower = [...band].reverse().map(([x, lo]) => `L${sx(x).toFixed(1)},${sy(lo).toFixed(1)}`)
      const data = (values: ReadonlyArray<number>) => values.map(String).join(" ")
      return `<path class="band" data-run="${escapeHtml(runs[k]!.name)}" data-metric="${escapeHtml(spec.metric)}" data-steps="${
        data(band.map(([x]) => x))
      }" data-lo="${data(band.map(([, lo]) => lo))}" data-hi="${data(band.map(([, , hi]) => hi))}" d="${
        [...upper, ...lower].join(" ")
      } Z" fill="${color}" fill-opacity="0.18" ${
        // One evaluated step has no area to shade: draw its bounds as a bar instead.
        band.length === 1 ? `stroke="${color}" stroke-opacity="0.35" stroke-width="4"` : `stroke="none"`}/>`
    })
    .join("")
  const lines = series
    .map((pts, k) => {
      if (pts.length === 0) return ""
      const color = palette[k % palette.length]!
      const path = pts.map(([x, y], i) => `${i === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ")
      const dots = pts.length <= 40 ? pts.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2" fill="${color}"/>`).join("") : ""
      return `<path d="${path}" fill="none" stroke="${color}" stroke-width="1.6"/>${dots}`
    })
    .join("")
  const ticks = [0, 0.5, 1]
    .map((f) => {
      const y = y0 + f * (y1 - y0)
      return `<text x="${pad.left - 6}" y="${sy(y) + 4}" font-size="10" text-anchor="end">${formatNumber(y)}</text><line x1="${pad.left}" x2="${
        W - pad.right
      }" y1="${sy(y)}" y2="${sy(y)}" stroke="#eee"/>`
    })
    .join("")
  const xTicks = `<text x="${pad.left}" y="${H - 10}" font-size="10">${x0}</text><text x="${W - pad.right}" y="${
    H - 10
  }" font-size="10" text-anchor="end">${x1}</text><text x="${(W + pad.left) / 2}" y="${H - 10}" font-size="10" text-anchor="middle">step</text>`
  return `<figure><svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${
    escapeHtml(spec.title)
  }"><text x="${pad.left}" y="16" font-size="13" font-weight="600">${escapeHtml(spec.title)}</text>${ticks}${xTicks}${shaded}${lines}</svg></figure>`
}

/**
 * The charts to draw when a report names none: {@link defaultCharts}, with a held-out
 * pass@k chart after the held-out accuracy for each `eval/pass@k` metric the runs
 * logged (pass@1 first).
 */
export const chartsFor = (runs: ReadonlyArray<ReportRun>): ReadonlyArray<ChartSpec> => {
  const ks = new Set<number>()
  for (const run of runs) {
    for (const record of run.records) {
      if (record.phase !== "eval") continue
      for (const name of Object.keys(record.metrics)) {
        const match = /^eval\/pass@(\d+)$/.exec(name)
        if (match !== null) ks.add(Number(match[1]))
      }
    }
  }
  const passCharts = [...ks].sort((a, b) => a - b).map((k): ChartSpec => ({
    title: `Held-out pass@${k} (${k === 1 ? "mean correctness of the samples" : `any of ${k} samples correct`})`,
    metric: `eval/pass@${k}`,
    phase: "eval",
  }))
  return [defaultCharts[0]!, ...passCharts, ...defaultCharts.slice(1)]
}

/** A table: a header row and rows of cells. */
export interface ReportTable {
  readonly caption: string
  readonly header: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string | number>>
}

const renderTable = (table: ReportTable): string =>
  `<table><caption>${escapeHtml(table.caption)}</caption><thead><tr>${table.header.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead><tbody>${
    table.rows
      .map((row) => `<tr>${row.map((cell) => `<td>${escapeHtml(typeof cell === "number" ? formatNumber(cell) : cell)}</td>`).join("")}</tr>`)
      .join("")
  }</tbody></table>`

/**
 * Render the whole report.
 *
 * @example
 * writeFileSync("report.html", renderReport({ title: "gtpo", runs: [{ name: "gtpo", records }], tables: [] }))
 */
export const renderReport = (options: {
  readonly title: string
  readonly subtitle?: string
  readonly runs: ReadonlyArray<ReportRun>
  readonly tables: ReadonlyArray<ReportTable>
  readonly charts?: ReadonlyArray<ChartSpec>
  readonly notes?: ReadonlyArray<string>
  /** What a run's shaded band shows (e.g. "min–max over seeds"), said in the legend. */
  readonly bandLegend?: string
}): string => {
  const charts = (options.charts ?? chartsFor(options.runs)).map((spec) => lineChart(spec, options.runs)).filter((svg) => svg !== "")
  const bandNote = options.bandLegend === undefined ? "" : ` <span class="band-legend">lines: mean; shaded band: ${escapeHtml(options.bandLegend)}</span>`
  const legend = options.runs.length > 1 || options.bandLegend !== undefined
    ? `<p class="legend">${
      options.runs.map((run, k) => `<span style="color:${palette[k % palette.length]}">&#9632; ${escapeHtml(run.name)}</span>`).join(" ")
    }${bandNote}</p>`
    : ""
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(options.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:4px}
table{border-collapse:collapse;margin:16px 0}th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}
caption{text-align:left;font-weight:600;margin-bottom:6px}.legend span{margin-right:16px;font-weight:600}.legend .band-legend{font-weight:400;color:#555}
</style></head><body>
<h1>${escapeHtml(options.title)}</h1>
${options.subtitle === undefined ? "" : `<p>${escapeHtml(options.subtitle)}</p>`}
${options.tables.map(renderTable).join("\n")}
${legend}
<div class="charts">${charts.join("\n")}</div>
${(options.notes ?? []).map((note) => `<p>${escapeHtml(note)}</p>`).join("\n")}
</body></html>
`
}

/** Parse metrics.jsonl text; a bad line is reported with its number. */
export const parseMetricsJsonl = (text: string, path: string): Array<ReportRecord> =>
  text
    .split("\n")
    .map((line, i) => [line.trim(), i + 1] as const)
    .filter(([line]) => line !== "")
    .map(([line, number]) => {
      let value: unknown
      try {
        value = JSON.parse(line)
      } catch {
        throw new Error(`${path}:${number}: not valid JSON`)
      }
      const record = value as Partial<ReportRecord>
      if (typeof record.step !== "number" || typeof record.phase !== "string" || typeof record.metrics !== "object" || record.metrics === null) {
        throw new Error(`${path}:${number}: expected {step, phase, metrics}`)
      }
      return record as ReportRecord
    })
