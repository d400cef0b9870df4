/**
 * The `CheckpointStore` service: save and restore everything a run needs to continue
 * exactly (weights, optimizer state, RNG state, step, the recipe).
 *
 * The runtime implementation writes safetensors atomically (temporary directory,
 * then rename), so a kill at any moment leaves the last good checkpoint loadable.
 *
 * @category services
 */
import { Context, Data } from "effect"
import type { Effect } from "effect"

/** Where a saved checkpoint is and what it holds beyond tensors. */
export interface CheckpointInfo {
  readonly step: number
  readonly path: string
  /** Pipeline state saved with the checkpoint (data cursor, pipeline RNG state, ...). */
  readonly meta: Readonly<Record<string, unknown>>
}

/** A checkpoint could not be written or read; names the file and the problem. */
export class CheckpointError extends Data.TaggedError("CheckpointError")<{ readonly path: string; readonly problem: string }> {
  override get message(): string {
    return `checkpoint ${this.path}: ${this.problem}`
  }
}

/** What a checkpoint store offers. */
export interface CheckpointStoreShape {
  readonly save: (step: number, meta: Readonly<Record<string, unknown>>) => Effect.Effect<CheckpointInfo, CheckpointError>
  /** Restore the newest complete checkpoint into the live policy; null when there is none. */
  readonly restoreLatest: () => Effect.Effect<CheckpointInfo | null, CheckpointError>
}

export class CheckpointStore extends Context.Service<CheckpointStore, CheckpointStoreShape>()("turnwise/dsl/CheckpointStore") {}
