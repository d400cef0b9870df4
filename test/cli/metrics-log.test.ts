/**
 * metrics.jsonl as a resume reads it: a line torn by a kill at the end is dropped, a bad
 * line before the end is an error naming it, and cutting back to a checkpoint keeps
 * exactly the records up to its step.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { cutMetricsLog, readMetricsLog } from "../../packages/cli/src/run/metrics-log.js"

const line = (step: number, phase: string) => JSON.stringify({ step, phase, metrics: { "reward/mean": step / 10 }, elapsedSeconds: step }) + "\n"

const logFile = (text: string): string => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "turnwise-metrics-")), "metrics.jsonl")
  writeFileSync(file, text)
  return file
}

describe("the metrics log", () => {
  it("drops a torn last line and cuts back to a checkpoint's step", async () => {
    const file = logFile(line(0, "eval") + line(1, "train") + line(2, "train") + line(2, "eval") + line(3, "train") + "{\"step\":4,\"pha")
    expect((await readMetricsLog(file)).map((r) => `${r.phase}:${r.step}`)).toEqual(["eval:0", "train:1", "train:2", "eval:2", "train:3"])
    const kept = await cutMetricsLog(file, 2)
    expect(kept.map((r) => `${r.phase}:${r.step}`)).toEqual(["eval:0", "train:1", "train:2", "eval:2"])
    expect(readFileSync(file, "utf8")).toBe(line(0, "eval") + line(1, "train") + line(2, "train") + line(2, "eval"))
  })

  it("reports a bad line before the end with its number, and reads a missing log as empty", async () => {
    const file = logFile(line(1, "train") + "garbage\n" + line(2, "train"))
    await expect(readMetricsLog(file)).rejects.toThrow(/metrics\.jsonl:2: not a metrics record/)
    expect(await readMetricsLog(path.join(path.dirname(file), "none.jsonl"))).toEqual([])
  })
})
