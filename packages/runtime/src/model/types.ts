/**
 * What the trainer, the sampler and checkpoints need from a model.
 *
 * @category models
 */
import type * as tf from "@tensorflow/tfjs"

/** A differentiable next-token model whose weights are named tf.Variables. */
export interface TrainableModel {
  /** Weights by checkpoint name (Hugging Face Llama/Qwen2 names for the transformer). */
  readonly variables: ReadonlyMap<string, tf.Variable>
  /** Vocabulary size (last dimension of the logits). */
  readonly vocabSize: number
  /** Longest sequence the model accepts. */
  readonly maxSeqLen: number
  /** Next-token logits for every position. tokens: int32 [B, T] -> logits [B, T, V]. Differentiable. */
  logits(tokens: tf.Tensor2D): tf.Tensor3D
}
