import { describe, expect, it } from "vitest"
import { runInNewContext } from "node:vm"
import { Rng } from "../../packages/core/src/rng.js"
import {
  generateProblem,
  generateProblems,
  PHRASINGS,
  splitOf,
  TaskConfigError,
  TEMPLATES,
  WORD_TEMPLATE_NAMES,
  type Level,
} from "../../packages/tasks/src/arithmetic.js"
import type { Problem } from "../../packages/tasks/src/problem.js"
import { decodeProblem } from "../../packages/tasks/src/problem.js"

// An independent exact evaluator (recursive descent over BigInt) for + - * / and
// parentheses; it also records the largest intermediate magnitude.
const evalExact = (src: string): { value: bigint; maxAbs: bigint } => {
  let i = 0
  let maxAbs = 0n
  const note = (v: bigint) => {
    const a = v < 0n ? -v : v
    if (a > maxAbs) maxAbs = a
    return v
  }
  const expr = (): bigint => {
    let v = term()
    while (src[i] === "+" || src[i] === "-") {
      const op = src[i++]
      const r = term()
      v = note(op === "+" ? v + r : v - r)
    }
    return v
  }
  const term = (): bigint => {
    let v = factor()
    while (src[i] === "*" || src[i] === "/") {
      const op = src[i++]
      const r = factor()
      if (op === "/" && (r === 0n || v % r !== 0n)) throw new Error(`inexact division in ${src}`)
      v = note(op === "*" ? v * r : v / r)
    }
    return v
  }
  const factor = (): bigint => {
    if (src[i] === "(") {
      i++
      const v = expr()
      if (src[i++] !== ")") throw new Error(`expected ) in ${src}`)
      return v
    }
    const m = /^\d+/.exec(src.slice(i))
    if (m === null) throw new Error(`expected a number at ${i} in ${src}`)
    i += m[0].length
    return note(BigInt(m[0]))
  }
  const value = expr()
  if (i !== src.length) throw new Error(`trailing input in ${src}`)
  return { value, maxAbs }
}

const operands = (expr: string): Array<string> => expr.match(/\d+/g) ?? []
const operators = (expr: string): Array<string> => expr.match(/[+\-*/]/g) ?? []
const exprOf = (p: Problem): string => {
  const m = /^(.*)=\?$/.exec(p.question)
  if (m?.[1] === undefined) throw new Error(`not an expression question: ${p.question}`)
  return m[1]
}
const byLevel = (level: Level, count = 300): Array<Problem> => generateProblems({ seed: 11, count, levels: [level], split: "train" })

describe("generateProblems: determinism and splits", () => {
  it("is deterministic for a seed, differs across seeds, and extends as a prefix", () => {
    const a = generateProblems({ seed: 5, count: 40, split: "train" })
    const b = generateProblems({ seed: 5, count: 40, split: "train" })
    const c = generateProblems({ seed: 6, count: 40, split: "train" })
    expect(a).toEqual(b)
    expect(a.map((p) => p.question)).not.toEqual(c.map((p) => p.question))
    expect(generateProblems({ seed: 5, count: 15, split: "train" })).toEqual(a.slice(0, 15))
  })

  it("keeps train and held-out disjoint, whatever the seeds", () => {
    const train = generateProblems({ seed: 1, count: 3000, split: "train" })
    const heldout = [
      ...generateProblems({ seed: 1, count: 500, split: "heldout" }),
      ...generateProblems({ seed: 2, count: 500, split: "heldout" }),
    ]
    const trainQuestions = new Set(train.map((p) => p.question))
    expect(heldout.filter((p) => trainQuestions.has(p.question))).toEqual([])
    for (const p of train) expect(splitOf(p.question)).toBe("train")
    for (const p of heldout) expect(splitOf(p.question)).toBe("heldout")
  })

  it("has distinct questions and ids within a set, cycling through the levels", () => {
    const ps = generateProblems({ seed: 3, count: 500, levels: [1, 4], split: "train" })
    expect(new Set(ps.map((p) => p.question)).size).toBe(500)
    expect(new Set(ps.map((p) => p.id)).size).toBe(500)
    expect(ps.map((p) => p.difficulty).slice(0, 4)).toEqual([1, 4, 1, 4])
  })

  it("splits by a fixed hash of the question (FNV-1a vectors)", () => {
    // FNV-1a("a") = 0xe40c292c = 3826002220; 3826002220 % 10000 = 2220.
    expect(splitOf("a", 0.2)).toBe("train") // 2220 >= 2000
    expect(splitOf("a", 0.3)).toBe("heldout") // 2220 < 3000
    // FNV-1a("") = 0x811c9dc5 = 2166136261; % 10000 = 6261.
    expect(splitOf("", 0.62)).toBe("train")
    expect(splitOf("", 0.63)).toBe("heldout")
  })

  it("holds out about the requested share of all questions", () => {
    const rng = Rng.fromSeed(9)
    let held = 0
    for (let i = 0; i < 2000; i++) if (splitOf(generateProblem(rng, 2).question) === "heldout") held++
    expect(held / 2000).toBeGreaterThan(0.16)
    expect(held / 2000).toBeLessThan(0.24)
  })

  it("produces Problems that decode with the schema", () => {
    for (const p of generateProblems({ seed: 4, count: 10, split: "heldout" })) expect(decodeProblem(p)).toEqual(p)
  })

  it("rejects bad options with a TaskConfigError", () => {
    expect(() => generateProblems({ seed: 1, count: 3, levels: [7], split: "train" })).toThrow(TaskConfigError)
    expect(() => generateProblems({ seed: 1, count: -1, split: "train" })).toThrow(/count/)
    expect(() => generateProblems({ seed: 1, count: 3, levels: [], split: "train" })).toThrow(/levels/)
    expect(() => generateProblems({ seed: 1, count: 3, split: "train", heldoutFraction: 1 })).toThrow(/heldoutFraction/)
  })
})

describe("generateProblems: varied phrasings", () => {
  const bare = generateProblems({ seed: 7, count: 300, levels: [1, 2, 4], split: "train" })
  const train = generateProblems({ seed: 7, count: 300, levels: [1, 2, 4], split: "train", phrasings: "varied" })
  const heldout = generateProblems({ seed: 7, count: 300, levels: [1, 2, 4], split: "heldout", phrasings: "varied-unseen" })
  const heldoutSeen = generateProblems({ seed: 7, count: 300, levels: [1, 2, 4], split: "heldout", phrasings: "varied" })
  // An expression problem's one reference step is its expression.
  const expressionOf = (p: Problem): string => String(p.steps?.[0])

  it("asks the same expressions as the bare questions, with the same answers and steps", () => {
    expect(train.map((p) => [p.id, p.answer, p.steps])).toEqual(bare.map((p) => [p.id, p.answer, p.steps]))
    for (const [i, p] of train.entries()) {
      if (p.family !== "arithmetic") {
        expect(p.question).toBe(bare[i]?.question)
        continue
      }
      const phrasing = PHRASINGS.find((f) => f.name === p.tags["phrasing"])
      expect(phrasing?.ask(bare[i]?.question.slice(0, -2) ?? "")).toBe(p.question)
    }
  })

  it("asks held-out problems in training wordings with varied, and only in held-out wordings with varied-unseen", () => {
    const used = (ps: ReadonlyArray<Problem>) => new Set(ps.filter((p) => p.family === "arithmetic").map((p) => String(p.tags["phrasing"])))
    const names = (split: string) => new Set(PHRASINGS.filter((f) => f.split === split).map((f) => f.name))
    expect(used(train)).toEqual(names("train"))
    expect(used(heldout)).toEqual(names("heldout"))
    expect(used(heldoutSeen)).toEqual(names("train"))
    expect(heldoutSeen.map((p) => p.id)).toEqual(heldout.map((p) => p.id))
    expect(names("heldout").size).toBeGreaterThanOrEqual(2)
    const trainQuestions = new Set(train.map((p) => p.question))
    expect(heldout.filter((p) => trainQuestions.has(p.question))).toEqual([])
  })

  it("keeps the expression split, so no expression is asked on both sides", () => {
    const trainExpressions = new Set(train.filter((p) => p.family === "arithmetic").map(expressionOf))
    expect(heldout.filter((p) => p.family === "arithmetic" && trainExpressions.has(expressionOf(p)))).toEqual([])
  })
})

describe("generateProblems: templates", () => {
  const bare = generateProblems({ seed: 9, count: 400, levels: [1, 2], split: "train" })
  const train = generateProblems({ seed: 9, count: 400, levels: [1, 2], split: "train", phrasings: "templates" })
  const heldout = generateProblems({ seed: 9, count: 400, levels: [1, 2], split: "heldout", phrasings: "templates-unseen" })
  const heldoutSeen = generateProblems({ seed: 9, count: 400, levels: [1, 2], split: "heldout", phrasings: "templates" })
  const split = (side: string) => TEMPLATES.filter((t) => t.split === side)
  const used = (ps: ReadonlyArray<Problem>) => new Set(ps.filter((p) => p.family === "arithmetic").map((p) => String(p.tags["phrasing"])))

  it("holds out one template in five, each a new combination of parts that training templates use", () => {
    expect(TEMPLATES).toHaveLength(160)
    expect(new Set(TEMPLATES.map((t) => t.name)).size).toBe(160)
    expect(split("heldout")).toHaveLength(32)
    // A template's parts, read off its wording of a marker expression.
    const parts = (t: (typeof TEMPLATES)[number]) => t.ask("EXPR").split("EXPR")
    const trainedOpeners = new Set(split("train").map((t) => parts(t)[0]))
    const trainedClosers = new Set(split("train").map((t) => (parts(t)[1] ?? "").replace(/^[?.=]+/, "")))
    for (const t of split("heldout")) {
      expect(trainedOpeners.has(parts(t)[0]), t.name).toBe(true)
      expect(trainedClosers.has((parts(t)[1] ?? "").replace(/^[?.=]+/, "")), t.name).toBe(true)
    }
    expect(split("train").map((t) => t.ask("1+2"))).toContain("1+2=?")
  })

  it("asks the bare expressions, training problems in training templates and held-out ones only in held-out templates", () => {
    expect(train.map((p) => [p.id, p.answer, p.steps])).toEqual(bare.map((p) => [p.id, p.answer, p.steps]))
    for (const [i, p] of train.entries()) {
      const template = TEMPLATES.find((t) => t.name === p.tags["phrasing"])
      expect(template?.ask(bare[i]?.question.slice(0, -2) ?? "")).toBe(p.question)
    }
    const names = (side: string) => new Set(split(side).map((t) => t.name))
    expect([...used(train)].every((n) => names("train").has(n))).toBe(true)
    expect([...used(heldoutSeen)].every((n) => names("train").has(n))).toBe(true)
    expect([...used(heldout)].every((n) => names("heldout").has(n))).toBe(true)
    // Enough problems to see most templates of each side.
    expect(used(train).size).toBeGreaterThan(100)
    expect(used(heldout).size).toBeGreaterThan(25)
    expect(heldoutSeen.map((p) => p.id)).toEqual(heldout.map((p) => p.id))
  })
})

describe("generateProblems: answers are correct", () => {
  it.each([1, 2, 3, 5] as const)("level %i: the answer is the expression's exact value, and plain JS computes it exactly", (level) => {
    for (const p of byLevel(level)) {
      const expr = exprOf(p)
      const { value, maxAbs } = evalExact(expr)
      expect(p.answer).toBe(value.toString())
      expect(maxAbs <= BigInt(Number.MAX_SAFE_INTEGER)).toBe(true)
      // What the model's copied code prints in a JS REPL.
      expect(String(runInNewContext(expr))).toBe(p.answer)
      expect(p.steps).toEqual([expr])
    }
  })

  it("level 4: the answer follows from the numbers in the question (each template solved by hand)", () => {
    const ps = byLevel(4, 400)
    const seen = new Set<string>()
    for (const p of ps) {
      const n = (p.question.match(/\d+/g) ?? []).map(BigInt)
      const template = String(p.tags["template"])
      seen.add(template)
      let want: bigint
      switch (template) {
        case "shop": {
          const [a = 0n, b = 0n, k = 0n] = n
          want = a - b + k * b
          break
        }
        case "pens": {
          const [boxes = 0n, each = 0n, given = 0n, students = 0n] = n
          expect((boxes * each - given) % students).toBe(0n)
          expect(given > 0n).toBe(true)
          want = (boxes * each - given) / students
          break
        }
        case "savings": {
          const [a = 0n, w = 0n, spent = 0n, k = 0n] = n
          want = (a * w - spent) * k
          break
        }
        case "train": {
          const [v = 0n, h = 0n, u = 0n, g = 0n] = n
          want = v * h + u * g
          break
        }
        case "factory": {
          const [a = 0n, d = 0n, faulty = 0n, per = 0n] = n
          expect((a * d - faulty) % per).toBe(0n)
          want = (a * d - faulty) / per
          break
        }
        default:
          throw new Error(`unknown template ${template}`)
      }
      expect(p.answer).toBe(want.toString())
      expect(want > 0n).toBe(true)
    }
    expect([...seen].sort()).toEqual([...WORD_TEMPLATE_NAMES].sort())
  })

  it("level 4: running the steps, each fed the earlier results, reaches the answer", () => {
    for (const p of byLevel(4, 100)) {
      const outputs: Array<string> = []
      for (const step of p.steps ?? []) {
        const code = step.replace(/\{(\d+)\}/g, (_, k: string) => outputs[Number(k)] ?? "?")
        outputs.push(evalExact(code).value.toString())
      }
      expect(outputs[outputs.length - 1]).toBe(p.answer)
    }
  })
})

describe("generateProblems: difficulty levels differ", () => {
  it("level 1: one +, - or * on 2-3 digit numbers", () => {
    for (const p of byLevel(1)) {
      const e = exprOf(p)
      expect(operators(e.replace(/^-/, ""))).toHaveLength(1)
      for (const x of operands(e)) expect(x.length >= 2 && x.length <= 3).toBe(true)
      expect(p.steps).toHaveLength(1)
    }
  })

  it("level 2: 3-4 digit operands, only * and +, no parentheses", () => {
    for (const p of byLevel(2)) {
      const e = exprOf(p)
      expect(e).toMatch(/^[\d*+]+$/)
      for (const x of operands(e)) expect(x.length >= 3 && x.length <= 4).toBe(true)
    }
  })

  it("level 3: 3-4 operations with parentheses", () => {
    for (const p of byLevel(3)) {
      const e = exprOf(p)
      expect(e).toContain("(")
      const ops = operators(e).length
      expect(ops >= 3 && ops <= 4).toBe(true)
    }
  })

  it("level 4: word problems in 2-3 steps, later steps using earlier results", () => {
    for (const p of byLevel(4)) {
      expect(p.question).toMatch(/^[A-Z].*\?$/)
      const steps = p.steps ?? []
      expect(steps.length >= 2 && steps.length <= 3).toBe(true)
      expect(steps[0]).not.toMatch(/\{\d+\}/)
      expect(steps[steps.length - 1]).toMatch(/\{\d+\}/)
    }
  })

  it("level 5: large operands (at least 4 digits, some of 6-8) and larger answers than level 2", () => {
    const l5 = byLevel(5)
    for (const p of l5) {
      const ds = operands(exprOf(p)).map((x) => x.length)
      expect(Math.min(...ds)).toBeGreaterThanOrEqual(4)
      expect(Math.max(...ds)).toBeGreaterThanOrEqual(6)
    }
    const meanDigits = (ps: Array<Problem>) => ps.reduce((s, p) => s + p.answer.replace("-", "").length, 0) / ps.length
    expect(meanDigits(l5)).toBeGreaterThan(meanDigits(byLevel(2)) + 4)
    expect(meanDigits(byLevel(2))).toBeGreaterThan(meanDigits(byLevel(1)) + 1.5)
  })
})
