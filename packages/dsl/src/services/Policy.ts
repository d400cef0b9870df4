/**
 * The `Policy` service: the model being trained, seen from the pipeline.
 *
 * It samples continuations in sessions whose rows keep a KV cache across turns (so a
 * multi-turn trajectory is never re-encoded from scratch), trains on token-level
 * sequences with a policy loss chosen by the recipe, and embeds code with its own
 * hidden states (the literal "self-supervised" similarity of GTPO's shaping).
 *
 * @category services
 */
import { Context, Data } from "effect"
import type { Effect, Scope } from "effect"
import type { LossInputs, LossOutput, TrainingSequence } from "@turnwise/core"

/** How to sample one turn. */
export interface GenerateOptions {
  readonly maxNewTokens: number
  readonly temperature: number
  readonly topP: number
  readonly topK: number
  /** Generation stops after any of these strings; the string is part of the output. */
  readonly stop: ReadonlyArray<string>
}

/** One row's sampled continuation. */
export interface Generation {
  /** Token ids exactly as sampled. */
  readonly tokens: ReadonlyArray<number>
  /** log softmax(logits / temperature) of each sampled token (what the trainer recomputes). */
  readonly logprobs: ReadonlyArray<number>
  readonly text: string
  readonly finish: "stop" | "eos" | "length" | "context"
}

/** A batch of independent rows sharing one KV cache allocation. */
export interface SamplingSession {
  /** Queue context tokens (prompt, tool feedback) for a row; prefilled on the next generate. */
  readonly append: (row: number, tokens: ReadonlyArray<number>) => Effect.Effect<void, PolicyError>
  /** Sample a continuation for each listed row. */
  readonly generate: (rows: ReadonlyArray<number>, options: GenerateOptions) => Effect.Effect<ReadonlyArray<Generation>, PolicyError>
  /** Tokens held for a row (context plus generated). */
  readonly length: (row: number) => number
}

/** What one optimisation step did. */
export interface TrainReport {
  readonly skipped: boolean
  readonly reason?: string
  readonly metrics: Readonly<Record<string, number>>
}

/** Options of one RL update. */
export interface TrainOptions {
  readonly loss: (inputs: LossInputs) => LossOutput
  /** Sampling temperature, so recomputed logprobs match the sampled ones. */
  readonly temperature: number
  /**
   * How micro-batch gradients are weighted when accumulated: by policy tokens (exact for
   * token-mean losses) or by sequences (for sequence-mean losses).
   */
  readonly accumulation: "tokens" | "sequences"
}

/** A failure of the policy runtime (not of the algorithm's input). */
export class PolicyError extends Data.TaggedError("PolicyError")<{ readonly operation: string; readonly reason: string }> {
  override get message(): string {
    return `policy ${this.operation} failed: ${this.reason}`
  }
}

/** What a policy offers. */
export interface PolicyShape {
  /** Longest sequence (prompt plus all turns) the policy can hold. */
  readonly maxSeqLen: number
  /** Open a sampling session of `rows` rows; disposed when the scope closes. */
  readonly session: (rows: number, seed: number) => Effect.Effect<SamplingSession, PolicyError, Scope.Scope>
  /** One RL update on the given sequences. */
  readonly train: (sequences: ReadonlyArray<TrainingSequence>, options: TrainOptions) => Effect.Effect<TrainReport, PolicyError>
  /** One supervised update (cross-entropy on masked tokens). */
  readonly trainSupervised: (sequences: ReadonlyArray<TrainingSequence>) => Effect.Effect<TrainReport, PolicyError>
  /** The policy's own embedding of code strings (mean final hidden state over the code's tokens). */
  readonly embedCode: (codes: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<ReadonlyArray<number>>, PolicyError>
}

/**
 * @example
 * Effect.gen(function* () { const policy = yield* Policy; const s = yield* policy.session(4, 7) })
 */
export class Policy extends Context.Service<Policy, PolicyShape>()("turnwise/dsl/Policy") {}
