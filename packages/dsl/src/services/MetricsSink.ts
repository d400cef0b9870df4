/**
 * The `MetricsSink` service: one record per training step (and per evaluation).
 *
 * Metric names are stable (`reward/mean`, `actor/clip_frac`, ...) so reports and user
 * dashboards can rely on them. The default layer appends JSON lines to a file; an
 * in-memory layer serves tests and embedding apps.
 *
 * @category services
 */
import { Context, Effect, Layer } from "effect"
import { appendFileSync, mkdirSync } from "node:fs"
import { dirname } from "node:path"

/** One record: a step number, a phase, and named numbers. */
export interface MetricsRecord {
  readonly step: number
  readonly phase: "train" | "eval" | "sft"
  readonly metrics: Readonly<Record<string, number>>
}

/** What a metrics sink offers. */
export interface MetricsSinkShape {
  readonly record: (record: MetricsRecord) => Effect.Effect<void>
}

/**
 * @example
 * Effect.gen(function* () { const sink = yield* MetricsSink; yield* sink.record({ step: 1, phase: "train", metrics: { "reward/mean": 0.4 } }) })
 */
export class MetricsSink extends Context.Service<MetricsSink, MetricsSinkShape>()("turnwise/dsl/MetricsSink") {
  /** Append each record as one JSON line to `path` (directories are created). */
  static readonly jsonl = (path: string): Layer.Layer<MetricsSink> =>
    Layer.sync(MetricsSink, () => {
      mkdirSync(dirname(path), { recursive: true })
      return {
        record: (record) => Effect.sync(() => appendFileSync(path, JSON.stringify(record) + "\n")),
      }
    })

  /** Keep records in the given array (tests, apps that chart live). */
  static readonly memory = (into: Array<MetricsRecord>): Layer.Layer<MetricsSink> =>
    Layer.succeed(MetricsSink, { record: (record) => Effect.sync(() => void into.push(record)) })

  /** Drop everything. */
  static readonly none: Layer.Layer<MetricsSink> = Layer.succeed(MetricsSink, { record: () => Effect.void })
}
