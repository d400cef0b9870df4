/**
 * The differentiable building blocks whose tfjs gradients are slow or missing on
 * the wasm backend, written with hand-made gradients.
 *
 * - {@link matmul}: tfjs differentiates `matMul` into matMuls with transposeA /
 *   transposeB set, which run about 20x slower on wasm than an explicit transpose
 *   followed by a plain matMul. It is ./batched-matmul.ts's `attentionMatMul`, whose
 *   gradient transposes explicitly and which on wasm also splits the batch into 2-D
 *   products (the only ones tfjs-wasm runs on XNNPACK).
 * - {@link linear}: `y = x W^T + b` with W in Hugging Face's [out, in] layout, its
 *   gradient again with explicit transposes (dx = dy W, dW = dy^T x).
 * - {@link embedding}: `gather`'s gradient needs the UnsortedSegmentSum kernel, which
 *   wasm lacks; the gradient here is a one-hot matmul (dE = onehot(ids)^T dy).
 *
 * On webgpu the transposes are the matMul's own flags instead: there a kernel costs a
 * dispatch, and tfjs-webgpu's transposed products are not slower.
 *
 * @category combinators
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernelsActive } from "../webgpu/program.js"
import { attentionMatMul } from "./batched-matmul.js"

/**
 * Batched matrix product `a @ b` ([N, M, K] @ [N, K, P] -> [N, M, P]) whose
 * gradient avoids transposed-matMul kernels: {@link attentionMatMul} without transposeB.
 *
 * @example
 * const scores = matmul(q, kT) // [B*H, T, Dh] @ [B*H, Dh, S] -> [B*H, T, S]
 */
export const matmul = (a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D => attentionMatMul(a, b)

const linearWithGrad = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, w, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc]
  save([x, w])
  const flags = fusedKernelsActive()
  return {
    value: flags ? tf.matMul(x, w, false, true) : tf.matMul(x, tf.transpose(w)), // [N, in] @ [in, out] -> [N, out]
    gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D]
      return [
        tf.matMul(dy, sw), // [N, out] @ [out, in] -> [N, in]
        flags ? tf.matMul(dy, sx, true, false) : tf.matMul(tf.transpose(dy), sx), // [out, N] @ [N, in] -> [out, in]
      ]
    },
  }
})

/**
 * `x W^T (+ b)` for W in Hugging Face's [out, in] layout.
 *
 * @example
 * const y = linear(x, w, b) // [N, in] -> [N, out]
 */
export const linear = (x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D => {
  const y = tf.reshape<tf.Rank.R2>(linearWithGrad(x, w), [x.shape[0], w.shape[0]]) // [N, out]
  return b === undefined ? y : tf.add(y, b) // [N, out]
}

/**
 * Rows of `table` at `ids` (int32), differentiable in `table` without the
 * UnsortedSegmentSum kernel.
 *
 * @example
 * const x = embedding(embedTokens, ids) // [V, D], [N] -> [N, D]
 */
export const embedding = (table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D => {
  const vocab = table.shape[0]
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [t, save] = args as [tf.Tensor2D, tf.GradSaveFunc]
    // ids are not an input of the custom op; saving them keeps them alive until the backward pass.
    save([ids])
    return {
      value: tf.gather(t, ids), // [N, D]
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
        const [sids] = saved as [tf.Tensor1D]
        // The cast matters: wasm's OneHot ignores a float dtype and writes int32 bits.
        const oneHot = tf.cast(tf.oneHot(sids, vocab), "float32") // [N, V]
        if (fusedKernelsActive()) return [tf.matMul(oneHot, dy, true, false)] // [V, N] @ [N, D] -> [V, D]
        return [tf.matMul(tf.transpose(oneHot), dy)] // [V, N] @ [N, D] -> [V, D]
      },
    }
  })
  return tf.reshape(f(table), [ids.shape[0], table.shape[1]]) // [N, D]
}
