/**
 * A run's metrics.jsonl: one JSON line per record, appended as the run goes, each with
 * the run's elapsed seconds (`elapsedSeconds`, counted across resumes), read back and
 * cut back to a checkpoint when a run resumes.
 *
 * A resumed run redoes the steps after its newest checkpoint, so their records are
 * removed first; a line torn by a kill in the middle of an append is removed with them.
 * The log then holds exactly what an uninterrupted run would have written so far.
 *
 * @category constructors
 */
import { appendFileSync, mkdirSync, promises as fs } from "node:fs"
import * as path from "node:path"
import { Data, Effect, Layer } from "effect"
import { MetricsSink } from "@turnwise/dsl"
import type { MetricsRecord } from "@turnwise/dsl"

/** A record as the log stores it. */
export interface LoggedRecord extends MetricsRecord {
  /** Seconds since the run started when the record was written (resumes included). */
  readonly elapsedSeconds?: number
}

/** metrics.jsonl has a line that is not a record, before its last line. */
export class MetricsLogError extends Data.TaggedError("MetricsLogError")<{ readonly path: string; readonly line: number; readonly problem: string }> {
  override get message(): string {
    return `${this.path}:${this.line}: ${this.problem}`
  }
}

const isRecord = (value: unknown): value is LoggedRecord => {
  const r = value as Partial<LoggedRecord> | null
  return typeof r === "object" && r !== null && typeof r.step === "number" && typeof r.phase === "string" && typeof r.metrics === "object" && r.metrics !== null
}

/**
 * The records of a metrics log ([] when the file does not exist). A bad last line is a
 * torn append and is dropped; a bad line before it is an error.
 *
 * @example
 * const records = await readMetricsLog("runs/g1/metrics.jsonl")
 */
export const readMetricsLog = async (file: string): Promise<Array<LoggedRecord>> => {
  const text = await fs.readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return ""
    throw error
  })
  const lines = text.split("\n")
  const records: Array<LoggedRecord> = []
  lines.forEach((line, i) => {
    if (line.trim() === "") return
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      value = undefined
    }
    if (isRecord(value)) {
      records.push(value)
      return
    }
    const last = lines.slice(i + 1).every((rest) => rest.trim() === "")
    if (!last) throw new MetricsLogError({ path: file, line: i + 1, problem: "not a metrics record ({step, phase, metrics})" })
  })
  return records
}

/**
 * Keep the records up to `step` (a checkpoint's step) and rewrite the log atomically;
 * returns what was kept.
 *
 * @example
 * const kept = await cutMetricsLog("runs/g1/metrics.jsonl", 20)
 */
export const cutMetricsLog = async (file: string, step: number): Promise<Array<LoggedRecord>> => {
  const kept = (await readMetricsLog(file)).filter((record) => record.step <= step)
  const tmp = `${file}.tmp-${process.pid}`
  await fs.mkdir(path.dirname(file), { recursive: true })
  await fs.writeFile(tmp, kept.map((record) => JSON.stringify(record) + "\n").join(""))
  await fs.rename(tmp, file)
  return kept
}

/**
 * A `MetricsSink` that appends to `file`, stamps each record with `elapsed()` seconds,
 * and hands it to `onRecord` (progress display).
 *
 * @example
 * openRun({ ..., metricsSink: metricsLogLayer("runs/g1/metrics.jsonl", { elapsed: () => clock.seconds(), onRecord: show }) })
 */
export const metricsLogLayer = (
  file: string,
  options: { readonly elapsed: () => number; readonly onRecord?: (record: LoggedRecord) => void },
): Layer.Layer<MetricsSink> =>
  Layer.sync(MetricsSink, () => {
    mkdirSync(path.dirname(file), { recursive: true })
    return {
      record: (record) =>
        Effect.sync(() => {
          const logged: LoggedRecord = { ...record, elapsedSeconds: options.elapsed() }
          appendFileSync(file, JSON.stringify(logged) + "\n")
          options.onRecord?.(logged)
        }),
    }
  })
