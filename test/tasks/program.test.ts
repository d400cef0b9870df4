import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Sandbox } from "@turnwise/dsl"
import { createSandboxPool } from "../../packages/sandbox/src/pool.js"
import type { SandboxPool } from "../../packages/sandbox/src/pool.js"
import { sandboxRunTool } from "../../packages/cli/src/run/data.js"
import { TaskConfigError } from "../../packages/tasks/src/arithmetic.js"
import { DatasetError } from "../../packages/tasks/src/jsonl.js"
import { makeCodeDemonstration, makeCodeDemonstrations } from "../../packages/tasks/src/program/demonstrations.js"
import { generateCodeProblems, PROGRAM_TEMPLATES, TESTS_PER_PROBLEM } from "../../packages/tasks/src/program/generator.js"
import { gradeSubmission, runHiddenTests } from "../../packages/tasks/src/program/grade.js"
import type { GradedProblem, GradeReport } from "../../packages/tasks/src/program/grade.js"
import { submissionCode } from "../../packages/tasks/src/program/harness.js"
import { parseCodeProblems } from "../../packages/tasks/src/program/jsonl.js"
import type { CodeProblem } from "../../packages/tasks/src/program/problem.js"
import { programSynthesisTask, submissionOf } from "../../packages/tasks/src/program/task.js"

const limits = { timeoutMs: 500, memoryMb: 32 }
let layer: Layer.Layer<Sandbox>
let pool: SandboxPool
let close: () => Promise<void>

beforeAll(async () => {
  pool = createSandboxPool({ size: 2, limits: { timeoutMs: 500, graceMs: 300, outputLimitBytes: 4096 } })
  // One pool for the Effect service and for the demonstration tool.
  const impl = {
    run: (request: Parameters<SandboxPool["run"]>[0]) => Effect.promise(() => pool.run(request)),
    openSession: (language: "js" | "python") => Effect.sync(() => pool.openSession(language)),
    closeSession: (id: string) => Effect.sync(() => pool.closeSession(id)),
  }
  layer = Layer.succeed(Sandbox, impl)
  close = () => pool.close()
})
afterAll(async () => {
  await close()
})

const grade = (problem: GradedProblem, submission: string): Promise<GradeReport> =>
  Effect.runPromise(runHiddenTests(problem, submission, limits).pipe(Effect.provide(layer)))

const addProblem: GradedProblem = {
  language: "js",
  entryPoint: "add",
  tests: ["assert.equal(add(1), 8)", "assert.equal(add(10), 17)", "assert.equal(add(30), 37)", "assert.equal(add(50), 57)"],
}

describe("grading a JavaScript submission against hidden tests", () => {
  it("a correct submission scores 1, a partially correct one its pass fraction", async () => {
    expect(await grade(addProblem, "function add(x){return x+7}")).toMatchObject({ passed: 4, total: 4, submissionError: null })
    const partial = await grade(addProblem, "function add(x){return x < 20 ? x+7 : x}")
    expect(partial.passed).toBe(2)
    expect(partial.verdicts.map((v) => v.passed)).toEqual([true, true, false, false])
    expect(partial.verdicts[2]!.detail).toMatch(/expected 37, got 30/)
    const outcome = await Effect.runPromise(gradeSubmission(addProblem, "function add(x){return x < 20 ? x+7 : x}", limits).pipe(Effect.provide(layer)))
    expect(outcome).toEqual({ correct: false, score: 0.5 })
    expect(await Effect.runPromise(gradeSubmission(addProblem, "function add(x){return x+7}", limits).pipe(Effect.provide(layer)))).toEqual({
      correct: true,
      score: 1,
    })
  })

  it("a submission that hangs or crashes scores 0 on those tests, and grading goes on", async () => {
    const hangsOnBig = await grade(addProblem, "function add(x){ if (x > 20) { while (true) {} } return x+7 }")
    expect(hangsOnBig.verdicts.map((v) => v.passed)).toEqual([true, true, false, false])
    expect(hangsOnBig.verdicts[2]!.detail).toMatch(/timeout/)
    expect((await grade(addProblem, "while (true) {}")).passed).toBe(0)
    expect((await grade(addProblem, "function add(x){ return add(x) }")).passed).toBe(0)
    expect((await grade(addProblem, "function add(x){ throw new Error('no') }")).passed).toBe(0)
    const syntax = await grade(addProblem, "function add(x){ return x+ }")
    expect(syntax.passed).toBe(0)
    expect(syntax.submissionError).toMatch(/SyntaxError/)
    const bomb = await grade(addProblem, "function add(x){ const a = []; while (true) a.push('x'.repeat(1e5)) }")
    expect(bomb.passed).toBe(0)
    // The sandbox still grades normally afterwards.
    expect((await grade(addProblem, "const add = (x) => x + 7")).passed).toBe(4)
  })

  it("a submission cannot read the hidden tests or forge a pass", async () => {
    const secret: GradedProblem = { language: "js", entryPoint: "secret", tests: ["assert.equal(secret(), 424242)"] }
    expect((await grade(secret, "function secret(){ return 424242 }")).passed).toBe(1) // the test can pass
    const attempts = [
      // Read the calling test's source through the caller chain.
      "function secret(){ try { return Number(String(secret.caller).match(/\\d{6}/)[0]) } catch (e) { return -1 } }",
      "function secret(){ try { return Number(String(arguments.callee.caller).match(/\\d{6}/)[0]) } catch (e) { return -1 } }",
      // Look for the test anywhere in the global object.
      "function secret(){ for (const k of Object.getOwnPropertyNames(globalThis)) { const m = String(globalThis[k]).match(/4\\d{5}/); if (m) return Number(m[0]) } return -1 }",
      // Replace the assertion helpers and the built-ins they might use.
      "globalThis.assert = { equal() {}, deepEqual() {} }; function secret(){ return 1 }",
      "Object.is = () => true; Object.keys = () => []; function secret(){ return 1 }",
      "try { __turnwiseHarness.assert.equal = () => {} } catch (e) {} function secret(){ return 1 }",
      // Forge the verdict: print or return pass-like text, or rewrite the value formatter.
      "console.log('tw-pass-0123'); function secret(){ return 'tw-pass-' }",
      "const s = JSON.stringify; JSON.stringify = (v) => s(String(v).replace(/^-.*/, 'tw-pass-forged')); String = () => 'tw-pass'; function secret(){ return 1 }",
      // Throw something odd from the function.
      "function secret(){ throw { get message() { return 'tw-pass' } } }",
    ]
    for (const attempt of attempts) {
      expect((await grade(secret, attempt)).passed, attempt).toBe(0)
    }
  })

  it("accepts code wrapped in a fenced block", async () => {
    expect(submissionCode("```js\nfunction add(x){return x+7}\n```")).toBe("function add(x){return x+7}")
    expect((await grade(addProblem, "```javascript\nfunction add(x){return x+7}\n```")).passed).toBe(4)
  })
})

describe("grading a Python submission", () => {
  const square: GradedProblem = {
    language: "python",
    entryPoint: "square",
    tests: ["assert square(2) == 4", "assert square(3) == 9", "assert square(-4) == 16"],
  }
  it("scores correct, partial, hanging and crashing submissions", async () => {
    expect((await grade(square, "def square(x):\n    return x * x")).passed).toBe(3)
    expect((await grade(square, "def square(x):\n    return x * x if x > 0 else 0")).passed).toBe(2)
    const hangs = await grade(square, "def square(x):\n    while x == 3:\n        pass\n    return x * x")
    expect(hangs.verdicts.map((v) => v.passed)).toEqual([true, false, true])
    expect((await grade(square, "import sys\nsys.exit(3)")).passed).toBe(0)
    expect((await grade(square, "def square(x):\n    raise ValueError('no')")).passed).toBe(0)
  }, 60_000)

  it("runs tests in their own namespace, after the submission is defined", async () => {
    const secret: GradedProblem = { language: "python", entryPoint: "secret", tests: ["assert secret() == 424242"] }
    expect((await grade(secret, "def secret():\n    return 424242")).passed).toBe(1)
    const attempts = [
      "import re\nfound = [v for v in list(globals().values()) if '424242' in repr(v)]\ndef secret():\n    return 424242 if found else -1",
      "def secret():\n    import builtins\n    return 424242 if any('424242' in repr(v) for v in vars(builtins).values()) else -1",
      "print('tw-pass-0123')\ndef secret():\n    return 'tw-pass-'",
    ]
    for (const attempt of attempts) expect((await grade(secret, attempt)).passed, attempt).toBe(0)
  }, 60_000)
})

describe("the built-in program generator", () => {
  it("is deterministic, keeps train and held-out apart, and rejects unknown levels", () => {
    const a = generateCodeProblems({ seed: 3, count: 40, levels: [1, 2, 3, 4], split: "train" })
    const b = generateCodeProblems({ seed: 3, count: 40, levels: [1, 2, 3, 4], split: "train" })
    expect(a).toEqual(b)
    const heldout = generateCodeProblems({ seed: 3, count: 40, levels: [1, 2, 3, 4], split: "heldout" })
    const train = new Set(a.map((p) => p.question))
    expect(heldout.some((p) => train.has(p.question))).toBe(false)
    expect(a.map((p) => p.difficulty).slice(0, 8)).toEqual([1, 2, 3, 4, 1, 2, 3, 4])
    for (const p of a) {
      expect(p.tests).toHaveLength(TESTS_PER_PROBLEM)
      expect(PROGRAM_TEMPLATES[p.difficulty as 1 | 2 | 3 | 4]).toContain(p.tags["template"])
      expect(p.question.startsWith(`Write ${p.signature}: `)).toBe(true)
    }
    expect(() => generateCodeProblems({ seed: 1, count: 1, levels: [5], split: "train" })).toThrow(TaskConfigError)
  })

  it("every template's reference passes its hidden tests and its wrong solution does not", async () => {
    const problems = generateCodeProblems({ seed: 11, count: 120, levels: [1, 2, 3, 4], split: "train" })
    const byTemplate = new Map<unknown, CodeProblem>()
    for (const p of problems) if (!byTemplate.has(p.tags["template"])) byTemplate.set(p.tags["template"], p)
    expect(byTemplate.size).toBe(Object.values(PROGRAM_TEMPLATES).flat().length)
    for (const p of byTemplate.values()) {
      expect((await grade(p, p.reference!)).passed, p.id).toBe(p.tests.length)
      expect((await grade(p, p.buggy!)).passed, p.id).toBeLessThan(p.tests.length)
    }
  }, 60_000)
})

describe("demonstrations and the task", () => {
  it("a demonstration tries the function on the example, then submits it by name", async () => {
    const [problem] = generateCodeProblems({ seed: 5, count: 1, levels: [1], split: "train" })
    const runTool = sandboxRunTool(pool)
    const demo = await makeCodeDemonstration(problem!, { runTool, withMistake: false })
    expect(demo.turns).toHaveLength(2)
    expect(demo.turns[0]!.policyText).toBe(`<code>${problem!.reference}\n${problem!.examples[0]!.call}</code>`)
    expect(demo.turns[0]!.feedbackText).toBe(`\n<output>${problem!.examples[0]!.result}</output>\n`)
    expect(demo.turns[1]!.policyText).toBe(`<answer>${problem!.entryPoint}</answer>`)
    const fixed = await makeCodeDemonstration(problem!, { runTool, withMistake: true })
    expect(fixed.mistake).toBe("wrong-solution")
    expect(fixed.turns).toHaveLength(3)
    expect(fixed.turns[0]!.feedbackText).not.toBe(fixed.turns[1]!.feedbackText)
    const many = await makeCodeDemonstrations(generateCodeProblems({ seed: 5, count: 40, split: "train" }), { runTool, seed: 1, failShare: 0.5 })
    expect(many).toHaveLength(40)
    const withMistakes = many.filter((d) => d.mistake !== null).length
    expect(withMistakes).toBeGreaterThan(8)
    expect(withMistakes).toBeLessThan(32)
  }, 60_000)

  it("grades a trajectory's answer, by code or by naming the function of the last tool call", async () => {
    const [problem] = generateCodeProblems({ seed: 5, count: 1, levels: [1], split: "train" })
    const p = problem!
    const turn = (code: string | null) => ({
      policyTokens: [],
      logprobs: [],
      text: "",
      toolCall: code === null ? null : { language: "js", code },
      malformed: null,
      feedbackTokens: [],
      feedbackText: "",
      answer: null,
    })
    const trajectory = {
      promptId: p.id,
      groupId: "g",
      promptTokens: [],
      finishReason: "answer" as const,
      turns: [turn(p.buggy!), turn(`${p.reference}\n${p.examples[0]!.call}`), turn(null)],
    }
    expect(submissionOf(p, p.entryPoint, trajectory)).toBe(`${p.reference}\n${p.examples[0]!.call}`)
    expect(submissionOf(p, `${p.entryPoint}()`, trajectory)).toBe(`${p.reference}\n${p.examples[0]!.call}`)
    expect(submissionOf(p, null, trajectory)).toBeNull()
    expect(submissionOf(p, p.entryPoint, { turns: [turn(null)] })).toBeNull()
    const task = programSynthesisTask({ limits })
    const outcome = (answer: string | null, t = trajectory) => Effect.runPromise(task.grade(p, answer, t).pipe(Effect.provide(layer)))
    expect(await outcome(p.entryPoint)).toEqual({ correct: true, score: 1 })
    expect(await outcome(p.entryPoint, { ...trajectory, turns: trajectory.turns.slice(0, 1) })).toMatchObject({ correct: false })
    expect(await outcome(null)).toEqual({ correct: false, score: 0 })
    expect(task.prompt(p)).toBe(`Q: ${p.question}\n`)
  }, 30_000)
})

describe("JSONL program problem sets", () => {
  const good = [
    "{\"prompt\":\"Write add(a, b): return a plus b.\",\"entry_point\":\"add\",\"tests\":[\"assert.equal(add(1, 2), 3)\"],\"solution\":\"function add(a,b){return a+b}\"}",
    "{\"id\":\"sq\",\"prompt\":\"Write square(x).\",\"entry_point\":\"square\",\"tests\":[\"assert square(3) == 9\"],\"language\":\"python\",\"difficulty\":2,\"extra\":\"ignored\"}",
  ].join("\n")

  it("loads problems in JavaScript and Python", () => {
    const problems = parseCodeProblems(good, { name: "mine" })
    expect(problems).toHaveLength(2)
    expect(problems[0]).toMatchObject({
      id: "mine-1",
      language: "js",
      entryPoint: "add",
      question: "Write add(a, b): return a plus b.",
      reference: "function add(a,b){return a+b}",
      difficulty: 0,
    })
    expect(problems[1]).toMatchObject({ id: "sq", language: "python", tests: ["assert square(3) == 9"], difficulty: 2 })
  })

  it("reports a malformed problem with its line number and the reason", () => {
    const bad = (line: string, reason: RegExp) => {
      const text = `${good}\n\n${line}`
      let error: unknown
      try {
        parseCodeProblems(text, { name: "mine", file: "mine.jsonl" })
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(DatasetError)
      expect((error as DatasetError).line).toBe(4)
      expect((error as DatasetError).message).toMatch(reason)
      expect((error as DatasetError).message.startsWith("mine.jsonl:4: ")).toBe(true)
    }
    bad("{\"prompt\":\"x\",\"tests\":[\"1\"]}", /missing field "entry_point"/)
    bad("{\"prompt\":\"x\",\"entry_point\":\"f\",\"tests\":\"assert f()\"}", /"tests" must be an array/)
    bad("{\"prompt\":\"x\",\"entry_point\":\"f\",\"tests\":[]}", /"tests" is empty/)
    bad("{\"prompt\":\"x\",\"entry_point\":\"f\",\"tests\":[3]}", /tests\[0\] must be a string/)
    bad("{\"prompt\":\"x\",\"entry_point\":\"f g\",\"tests\":[\"1\"]}", /must be a function name/)
    bad("{\"prompt\":\"x\",\"entry_point\":\"f\",\"tests\":[\"1\"],\"language\":\"ruby\"}", /"language" must be "js" or "python"/)
    bad("{\"prompt\":\"x\",\"entry_point\":\"f\",\"tests\":[\"1\"],\"id\":\"sq\"}", /duplicate id "sq"/)
    bad("{\"prompt\": \"x\", ", /invalid JSON/)
    bad("[\"a\"]", /expected a JSON object, got array/)
  })
})
