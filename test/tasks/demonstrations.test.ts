import { describe, expect, it } from "vitest"
import { runInNewContext } from "node:vm"
import { Rng } from "../../packages/core/src/rng.js"
import { generateProblems } from "../../packages/tasks/src/arithmetic.js"
import { checkAnswer, extractFinalAnswer } from "../../packages/tasks/src/answers.js"
import {
  breakCode,
  DemonstrationError,
  inlineSteps,
  makeDemonstration,
  makeDemonstrations,
  MISTAKE_KINDS,
  Protocol,
} from "../../packages/tasks/src/demonstrations.js"
import type { Problem } from "../../packages/tasks/src/problem.js"

// A real JavaScript evaluator standing in for the QuickJS sandbox: the final value,
// or "Name: message" for an error.
const jsTool = (code: string): string => {
  try {
    // A generous timeout: the machine is shared, and the code is plain arithmetic.
    return String(runInNewContext(code, Object.create(null), { timeout: 10_000 }))
  } catch (e) {
    // Errors thrown inside the context come from another realm, so `instanceof Error` is false.
    const field = (k: string) => (typeof e === "object" && e !== null ? String(Reflect.get(e, k)) : String(e))
    return `${field("name")}: ${field("message")}`
  }
}
const isError = (output: string): boolean => /^(SyntaxError|ReferenceError|TypeError): /.test(output)

const problem = (over: Partial<Problem>): Problem => ({
  id: "p1",
  question: "4821*97+12=?",
  answer: "467649",
  difficulty: 1,
  family: "arithmetic",
  tags: {},
  ...over,
})

const shop = problem({
  id: "shop",
  question: "A shop has 1234 apples, sells 567, then buys 3 times as many as it sold. How many apples does it have now?",
  answer: "2368", // 1234-567 = 667; 667 + 3*567 = 667 + 1701 = 2368
  steps: ["1234-567", "{0}+3*567"],
})

const PROTOCOL = /^Q: [^\n]+\n(<code>[^<\n]*<\/code>\n<output>[^<\n]*<\/output>\n)+<answer>[^<\n]+<\/answer>$/

describe("makeDemonstration", () => {
  it("writes a single-turn solution exactly in the protocol", async () => {
    const demo = await makeDemonstration(problem({}), { runTool: jsTool })
    expect(demo.text).toBe("Q: 4821*97+12=?\n<code>4821*97+12</code>\n<output>467649</output>\n<answer>467649</answer>")
    expect(demo.prompt).toBe("Q: 4821*97+12=?\n")
    expect(demo.turns).toEqual([
      { policyText: "<code>4821*97+12</code>", feedbackText: "\n<output>467649</output>\n" },
      { policyText: "<answer>467649</answer>", feedbackText: "" },
    ])
    expect(demo).toMatchObject({ problemId: "p1", style: "single", mistake: null })
  })

  it("writes a multi-turn solution whose later call copies the earlier output", async () => {
    const demo = await makeDemonstration(shop, { runTool: async (code) => jsTool(code) })
    expect(demo.text).toBe(
      `Q: ${shop.question}\n<code>1234-567</code>\n<output>667</output>\n<code>667+3*567</code>\n<output>2368</output>\n<answer>2368</answer>`,
    )
    expect(demo.style).toBe("multi")
  })

  it("uses what the tool printed, not a recomputation", async () => {
    // A tool that prints step 1's result as "667.0": the next call must carry that text.
    const calls: Array<string> = []
    const tool = (code: string) => {
      calls.push(code)
      return code === "1234-567" ? "667.0" : jsTool(code)
    }
    const demo = await makeDemonstration(shop, { runTool: tool })
    expect(calls).toEqual(["1234-567", "667.0+3*567"])
    expect(demo.turns[1]?.policyText).toBe("<code>667.0+3*567</code>")
  })

  it("inlines the steps into one call in the single style", async () => {
    expect(inlineSteps(["1234-567", "{0}+3*567"])).toBe("(1234-567)+3*567")
    expect(inlineSteps(["3*4", "5*6", "{0}+{1}", "{2}/2"])).toBe("((3*4)+(5*6))/2")
    const demo = await makeDemonstration(shop, { runTool: jsTool, style: "single" })
    expect(demo.turns.map((t) => t.policyText)).toEqual(["<code>(1234-567)+3*567</code>", "<answer>2368</answer>"])
    expect(demo.style).toBe("single")
  })

  it("puts a failing first call before the fix", async () => {
    const demo = await makeDemonstration(problem({}), { runTool: jsTool, mistake: "trailing-operator", seed: 1 })
    const [bad, good, answer] = demo.turns
    expect(bad?.policyText).toMatch(/^<code>4821\*97\+12[+*]<\/code>$/)
    expect(bad?.feedbackText).toMatch(/^\n<output>SyntaxError: [^<]+<\/output>\n$/)
    expect(good).toEqual({ policyText: "<code>4821*97+12</code>", feedbackText: "\n<output>467649</output>\n" })
    expect(answer?.policyText).toBe("<answer>467649</answer>")
    expect(demo.mistake).toBe("trailing-operator")
    expect(demo.text).toMatch(PROTOCOL)
  })

  it("answers at once with no call in the mental style", async () => {
    const demo = await makeDemonstration(problem({}), { runTool: () => Promise.reject(new Error("no call expected")), style: "mental" })
    expect(demo.text).toBe("Q: 4821*97+12=?\n<answer>467649</answer>")
    expect(demo.turns).toEqual([{ policyText: "<answer>467649</answer>", feedbackText: "" }])
    expect(demo).toMatchObject({ style: "mental", mistake: null })
    await expect(makeDemonstration(problem({}), { runTool: jsTool, style: "mental", mistake: "trailing-operator" })).rejects.toThrow(/no call/)
  })

  it("rejects a problem without a reference solution", async () => {
    const p = problem({ question: "How many legs do 3 spiders have?", answer: "24" })
    await expect(makeDemonstration(p, { runTool: jsTool })).rejects.toThrow(DemonstrationError)
    await expect(makeDemonstration(p, { runTool: jsTool })).rejects.toThrow(/p1: no reference solution/)
  })

  it("rejects a tool whose output disagrees with the answer", async () => {
    await expect(makeDemonstration(problem({}), { runTool: () => "467650" })).rejects.toThrow(/not the expected answer "467649"/)
    await expect(makeDemonstration(problem({}), { runTool: () => "ReferenceError: x is not defined" })).rejects.toThrow(/not a number/)
  })

  it("rejects a mistake that did not make the call fail", async () => {
    await expect(makeDemonstration(problem({}), { runTool: () => "467649", mistake: "identifier-typo" })).rejects.toThrow(
      /did not break the call/,
    )
  })
})

describe("breakCode", () => {
  const rng = () => Rng.fromSeed(3)
  it("drops the last closing parenthesis, or opens one that is never closed", () => {
    expect(breakCode("(1+2)*(3+4)", "unbalanced-paren", rng())).toBe("(1+2)*(3+4")
    const opened = breakCode("4821*97+12", "unbalanced-paren", rng())
    expect(["(4821*97+12", "4821*(97+12", "4821*97+(12"]).toContain(opened)
  })
  it("turns the first digit of one number into a look-alike letter", () => {
    expect(["A821*97+12", "4821*g7+12", "4821*97+l2"]).toContain(breakCode("4821*97+12", "identifier-typo", rng()))
  })
  it("makes JavaScript reject every kind of mistake", () => {
    const r = Rng.fromSeed(8)
    for (const code of ["4821*97+12", "(31+514-554)*402*233", "667+3*567", "1", "(5)"]) {
      for (const kind of MISTAKE_KINDS) expect(isError(jsTool(breakCode(code, kind, r)))).toBe(true)
    }
  })
})

describe("makeDemonstrations", () => {
  const problems = generateProblems({ seed: 21, count: 200, split: "train" })

  it("gives every demonstration in protocol form with a correct final answer", async () => {
    const demos = await makeDemonstrations(problems, { runTool: jsTool, seed: 1 })
    expect(demos).toHaveLength(200)
    for (const [i, demo] of demos.entries()) {
      const p = problems[i]
      if (p === undefined) throw new Error("missing problem")
      expect(demo.problemId).toBe(p.id)
      expect(demo.text).toMatch(PROTOCOL)
      expect(demo.text).toBe(demo.prompt + demo.turns.map((t) => t.policyText + t.feedbackText).join(""))
      expect(checkAnswer(extractFinalAnswer(demo.text) ?? "", p.answer)).toBe(true)
    }
  })

  it("makes one call per step for multi-step problems, each later call carrying the earlier outputs", async () => {
    const words = problems.filter((p) => p.difficulty === 4)
    expect(words.length).toBeGreaterThan(20)
    const demos = await makeDemonstrations(words, { runTool: jsTool, seed: 2, failShare: 0 })
    for (const [i, demo] of demos.entries()) {
      const steps = words[i]?.steps ?? []
      const calls = demo.turns.slice(0, -1)
      expect(calls).toHaveLength(steps.length)
      const outputs = calls.map((t) => /<output>(.*)<\/output>/.exec(t.feedbackText)?.[1] ?? "")
      for (const [k, step] of steps.entries()) {
        const expected = step.replace(/\{(\d+)\}/g, (_, j: string) => outputs[Number(j)] ?? "?")
        expect(calls[k]?.policyText).toBe(Protocol.code(expected))
      }
    }
  })

  it("fails first in exactly the requested share, with a call the tool really rejects", async () => {
    const demos = await makeDemonstrations(problems, { runTool: jsTool, seed: 3, failShare: 0.15 })
    const failed = demos.filter((d) => d.mistake !== null)
    expect(failed).toHaveLength(30)
    expect(new Set(failed.map((d) => d.mistake))).toEqual(new Set(MISTAKE_KINDS))
    for (const d of failed) {
      const [bad, fix] = d.turns
      expect(isError(/<output>(.*)<\/output>/.exec(bad?.feedbackText ?? "")?.[1] ?? "")).toBe(true)
      expect(bad?.policyText).not.toBe(fix?.policyText)
      expect(isError(fix?.feedbackText ?? "")).toBe(false)
    }
    for (const d of demos.filter((x) => x.mistake === null)) expect(d.text).not.toMatch(/Error/)
  })

  it("is deterministic for a seed and independent of concurrency", async () => {
    const a = await makeDemonstrations(problems.slice(0, 60), { runTool: jsTool, seed: 4, concurrency: 1 })
    const b = await makeDemonstrations(problems.slice(0, 60), { runTool: async (c) => jsTool(c), seed: 4, concurrency: 7 })
    const c = await makeDemonstrations(problems.slice(0, 60), { runTool: jsTool, seed: 5 })
    expect(b.map((d) => d.text)).toEqual(a.map((d) => d.text))
    expect(c.map((d) => d.text)).not.toEqual(a.map((d) => d.text))
  })

  it("solves a share of multi-step problems in one inlined call when asked", async () => {
    const words = problems.filter((p) => p.difficulty === 4)
    const demos = await makeDemonstrations(words, { runTool: jsTool, seed: 6, failShare: 0, singleShare: 1 })
    for (const d of demos) {
      expect(d.style).toBe("single")
      expect(d.turns).toHaveLength(2)
    }
  })

  it("answers the requested share at once, never one that fails first, and leaves the other choices as they were", async () => {
    const plain = await makeDemonstrations(problems, { runTool: jsTool, seed: 8, failShare: 0.15 })
    const mixed = await makeDemonstrations(problems, { runTool: jsTool, seed: 8, failShare: 0.15, mentalShare: 0.5 })
    const mental = mixed.filter((d) => d.style === "mental")
    expect(mental).toHaveLength(100)
    for (const d of mental) {
      expect(d.turns).toHaveLength(1)
      expect(d.text).not.toMatch(/<code>/)
      expect(checkAnswer(extractFinalAnswer(d.text) ?? "", problems.find((p) => p.id === d.problemId)?.answer ?? "")).toBe(true)
    }
    // The failed-call demonstrations are the same ones, and every other demonstration is unchanged.
    expect(mixed.filter((d) => d.mistake !== null).map((d) => d.text)).toEqual(plain.filter((d) => d.mistake !== null).map((d) => d.text))
    for (const [i, d] of mixed.entries()) if (d.style !== "mental") expect(d.text).toBe(plain[i]?.text)
  })

  it("rejects on an unsolvable problem, or leaves it out with skipFailures", async () => {
    const mixed = [problem({ id: "ok" }), problem({ id: "words", question: "How many legs do 3 spiders have?", answer: "24" })]
    await expect(makeDemonstrations(mixed, { runTool: jsTool, seed: 1, failShare: 0 })).rejects.toThrow(/words: no reference solution/)
    const kept = await makeDemonstrations(mixed, { runTool: jsTool, seed: 1, failShare: 0, skipFailures: true })
    expect(kept.map((d) => d.problemId)).toEqual(["ok"])
  })
})
