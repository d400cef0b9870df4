/**
 * Attention's batched matrix products ([N, M, K] @ [N, K, P], N = rows x kv heads),
 * forward and backward, on the fast path of each backend.
 *
 * tfjs-wasm sends a BatchMatMul to XNNPACK only when both operands have batch 1 and
 * neither transpose flag is set (`batch_mat_mul_impl.cc`); any other product runs a
 * scalar blocked loop, about 10x slower (3 vs 30-40 GFLOP/s, see docs/NOTES.md,
 * "Training speed"). So on wasm {@link attentionMatMul} splits the batch into N 2-D
 * operands, multiplies them one by one (XNNPACK) and concatenates the results, and its
 * gradient does the same, with any transposed operand made explicit by one batched
 * Transpose first. Other backends run the plain batched `tf.matMul`.
 *
 * Splitting on wasm reads the operand back once (`dataSync`) and uploads its N pieces:
 * wasm's Slice (and so `unstack` and `split`) copies its whole input to JS on every
 * call, so N slices cost N full copies, and its Gather and StridedSlice kernels are
 * slower still. The read is synchronous and cheap on wasm (a copy out of its heap).
 *
 * `TURNWISE_ATTENTION_MATMUL` (read once, at load) picks the mode: `auto` (default:
 * split on wasm when a piece is large enough to gain, batched otherwise), `batched`
 * (always the batched product) or `split` (always split, on any backend);
 * {@link setAttentionMatMulMode} changes it for the process (benchmarks, tests).
 *
 * @category combinators
 */
import * as tf from "@tensorflow/tfjs"

/** How attention's products run: see the module comment. */
export type AttentionMatMulMode = "auto" | "batched" | "split"

const modes: ReadonlyArray<AttentionMatMulMode> = ["auto", "batched", "split"]

const modeFromEnv = (): AttentionMatMulMode => {
  const raw = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.["TURNWISE_ATTENTION_MATMUL"]
  if (raw === undefined || raw === "") return "auto"
  const mode = modes.find((m) => m === raw)
  if (mode === undefined) throw new Error(`TURNWISE_ATTENTION_MATMUL must be one of ${modes.join(", ")}; got "${raw}"`)
  return mode
}

let currentMode: AttentionMatMulMode = modeFromEnv()

/**
 * The mode attention's products run in now.
 *
 * @example
 * attentionMatMulMode() // "auto" unless TURNWISE_ATTENTION_MATMUL says otherwise
 */
export const attentionMatMulMode = (): AttentionMatMulMode => currentMode

/**
 * Set the mode for the rest of the process (overrides TURNWISE_ATTENTION_MATMUL).
 *
 * @example
 * setAttentionMatMulMode("batched") // measure the old path in the same process
 */
export const setAttentionMatMulMode = (mode: AttentionMatMulMode): void => {
  if (!modes.includes(mode)) throw new Error(`attention matmul mode must be one of ${modes.join(", ")}; got "${String(mode)}"`)
  currentMode = mode
}

/**
 * In mode `auto` on wasm, a product is split only when its pieces have at least this
 * many rows (M) and FLOPs (2·M·K·P). Each piece costs tens of microseconds (upload,
 * dispatch, XNNPACK set-up, which packs the [K, P] operand), more than it saves on
 * small products and on short ones such as a decoding step's (M = query heads per kv
 * head). Measured on the 2-core development machine (batch 8): 32x64x64 is 1.7x and
 * 64x32x32 1.3x faster split, 384x64x128 8x; 32x32x32, 16x64x128 and 6x64x1000 are
 * 0.6-0.9x, so they stay batched.
 */
export const splitMinRows = 32
export const splitMinFlops = 1 << 17

/**
 * Whether a product of a [N, M, K] by a [N, K, P] operand runs split, under the current
 * backend and mode.
 *
 * @example
 * splitsProduct(8, 384, 64, 128) // true on wasm in mode "auto"
 */
export const splitsProduct = (n: number, m: number, k: number, p: number): boolean => {
  if (currentMode === "batched" || n <= 1) return false
  if (currentMode === "split") return true
  return tf.getBackend() === "wasm" && m >= splitMinRows && 2 * m * k * p >= splitMinFlops
}

/** [.., M, K] -> [.., K, M], materialised. */
const swapLast = (t: tf.Tensor3D): tf.Tensor3D => tf.transpose(t, [0, 2, 1])

/** The N 2-D matrices of a [N, R, C] tensor, as tensors of their own. */
const pieces = (t: tf.Tensor3D): Array<tf.Tensor2D> => {
  const [n, r, c] = t.shape
  if (tf.getBackend() !== "wasm") return tf.unstack(t) as Array<tf.Tensor2D> // slices are cheap elsewhere
  // One read of the whole operand, then N uploads (wasm's Slice would copy all of it N times).
  const data = t.dataSync() as Float32Array
  return Array.from({ length: n }, (_, i) => tf.tensor2d(data.subarray(i * r * c, (i + 1) * r * c), [r, c]))
}

/** A [N, R, C] operand whose pieces are read at most once (a gradient uses dC twice). */
class Operand {
  private split: Array<tf.Tensor2D> | undefined
  constructor(readonly t: tf.Tensor3D) {}
  pieces(): Array<tf.Tensor2D> {
    this.split ??= pieces(this.t)
    return this.split
  }
}

/** [N, M, K] @ [N, K, P] -> [N, M, P], neither transposed, split or batched per {@link splitsProduct}. */
const product = (a: Operand, b: Operand): tf.Tensor3D => {
  const [n, m, k] = a.t.shape
  const p = b.t.shape[2]
  if (!splitsProduct(n, m, k, p)) return tf.matMul(a.t, b.t)
  const bs = b.pieces()
  const products = a.pieces().map((ai, i) => tf.matMul(ai, bs[i] ?? ai)) // [M, P] each, 2-D: XNNPACK on wasm
  return tf.reshape(tf.concat(products, 0), [n, m, p]) // [N*M, P] -> [N, M, P]
}

/**
 * `a @ b` for [N, M, K] @ [N, K, P], with neither operand transposed, split or batched
 * as the mode says; not differentiable by itself (the cached decoding path uses it).
 *
 * @example
 * const scores = batchedProduct(qh, kT) // [B*Hkv, G*T, Dh] @ [B*Hkv, Dh, S] -> [B*Hkv, G*T, S]
 */
export const batchedProduct = (a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D => tf.tidy(() => product(new Operand(a), new Operand(b)))

/**
 * Batched product `a @ b` ([N, M, K] @ [N, K, P] -> [N, M, P]), or `a @ bᵀ` with
 * `transposeB` (b: [N, P, K]), differentiable. Neither its forward nor its backward
 * products use tfjs's transpose flags (a transposed operand is one explicit Transpose),
 * and on wasm each of them runs as N 2-D products when large enough (see the module
 * comment). Gradients: dA = dC·Bᵀ, dB = Aᵀ·dC (with transposeB, dB = dCᵀ·A).
 *
 * @example
 * const scores = attentionMatMul(qh, kT) // [B*Hkv, G*T, Dh] @ [B*Hkv, Dh, T] -> [B*Hkv, G*T, T]
 * const same = attentionMatMul(qh, kh, true) // kh: [B*Hkv, T, Dh]
 */
export const attentionMatMul = (a: tf.Tensor3D, b: tf.Tensor3D, transposeB = false): tf.Tensor3D => {
  const [n, m] = a.shape
  const p = transposeB ? b.shape[1] : b.shape[2]
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [sa, sb, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc]
    save([sa, sb])
    return {
      value: product(new Operand(sa), new Operand(transposeB ? swapLast(sb) : sb)), // [N, M, P]
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
        const [x, y] = saved as [tf.Tensor3D, tf.Tensor3D]
        const dc = new Operand(tf.reshape<tf.Rank.R3>(dy, [n, m, p])) // [N, M, P]
        return [
          product(dc, new Operand(transposeB ? y : swapLast(y))), // [N, M, P] @ [N, P, K] -> [N, M, K]
          transposeB
            ? product(new Operand(swapLast(dc.t)), new Operand(x)) // [N, P, M] @ [N, M, K] -> [N, P, K]
            : product(new Operand(swapLast(x)), dc), // [N, K, M] @ [N, M, P] -> [N, K, P]
        ]
      },
    }
  })
  return tf.reshape(f(a, b), [n, m, p]) // [N, M, P]
}
