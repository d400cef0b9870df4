/**
 * Progress: evaluations show a running clock on a terminal and their result when their
 * record arrives; steps after which an evaluation follows start that display.
 */
import { afterEach, describe, expect, it, vi } from "vitest"
import { Progress } from "../../packages/cli/src/run/progress.js"

afterEach(() => {
  vi.useRealTimers()
})

const evalRecord = (step: number) => ({
  step,
  phase: "eval" as const,
  metrics: { "outcome/accuracy": 0.25, "finish/answer_rate": 0.5, "turns/mean": 1.5, "tool/error_rate": 0 },
})

describe("Progress", () => {
  it("on a terminal, shows problems done and a clock while an evaluation runs, and prints its result on its own line", () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "performance"] })
    let screen = ""
    const progress = new Progress(10, { tty: true, log: () => {}, write: (text) => void (screen += text) }, { evalEvery: 5, heldout: 200 })
    progress.startEvaluation("before training")
    vi.advanceTimersByTime(1000)
    progress.sessionClosed(64)
    vi.advanceTimersByTime(2000)
    expect(screen).toMatch(/evaluating 200 held-out problems before training {2}0\/200 {2}0m01s/)
    expect(screen).toMatch(/evaluating 200 held-out problems before training {2}64\/200 {2}0m03s/)
    progress.record(evalRecord(0))
    expect(screen).toMatch(/\rheld-out accuracy before training: 0\.250 {2}answer rate 0\.500 {2}turns 1\.50 {2}tool errors 0\.000 {2}\(3 s\)\s*\n$/)
    const after = screen
    vi.advanceTimersByTime(5000)
    expect(screen).toBe(after) // the clock stopped with the result
    progress.done()
  })

  it("on a terminal, shows the running step's clock after the last step's figures", () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "performance"] })
    let screen = ""
    const progress = new Progress(10, { tty: true, log: () => {}, write: (text) => void (screen += text) }, { evalEvery: 5, heldout: 3 })
    progress.stepStarted(1)
    vi.advanceTimersByTime(2000)
    expect(screen).toMatch(/\rstep 1 running 0m02s$/)
    progress.update(1, { "reward/mean": 0.5 })
    vi.advanceTimersByTime(4000)
    expect(screen).toMatch(/\rstep 1\/10 {2}reward 0\.500 .* {2}\| {2}step 2 running 0m04s$/)
    progress.update(5, { "reward/mean": 0.5 })
    progress.record(evalRecord(5))
    vi.advanceTimersByTime(1000)
    expect(screen).toMatch(/held-out accuracy at step 5: 0\.250[^\r]*\n\rstep 6 running 0m00s\rstep 6 running 0m01s$/)
    progress.done()
  })

  it("starts the evaluation display after a step that is followed by one, and prints mid-run results", () => {
    const lines: Array<string> = []
    const progress = new Progress(10, { tty: false, log: (line) => void lines.push(line) }, { evalEvery: 5, heldout: 3 })
    progress.update(4, { "reward/mean": 0.1 })
    progress.update(5, { "reward/mean": 0.2 })
    progress.record(evalRecord(5))
    progress.update(10, { "reward/mean": 0.3 })
    progress.record(evalRecord(10))
    progress.done()
    expect(lines.filter((line) => !line.startsWith("step "))).toEqual([
      "evaluating 3 held-out problems at step 5 ...",
      expect.stringMatching(/^held-out accuracy at step 5: 0\.250 .*\(\d+ s\)$/),
      "evaluating 3 held-out problems after training (step 10) ...",
      expect.stringMatching(/^held-out accuracy after training \(step 10\): 0\.250/),
    ])
  })
})
