/**
 * The projections of the KV-cached decode on webgpu (../inference.ts) as one shader
 * each, with the elementwise work around them folded in:
 *
 *     y = prologue(x) @ W (+ bias) (+ residual)
 *
 * where W is [K, out] and the prologue is one of
 * - "none": x as given ([N, K]);
 * - "normalize": x * rsqrt(mean(x^2) + eps) per row ([N, K]; the RMSNorm gain is
 *   folded into W). The row scale factors out of the product, so the shader sums x^2
 *   while it streams x and scales each output once at the end;
 * - "swiglu": silu(gate) * up from a packed [N, 2K] input (gate | up per row).
 * That removes the separate normalize, SwiGLU and residual-add dispatches.
 *
 * Work split (aimed at few rows, e.g. the 16 of a decode step, but correct for any):
 * a workgroup owns a tile of {@link ROWS} rows x {@link COLS} output columns. K is
 * streamed in chunks of {@link CHUNK}: the workgroup stages the prologue'd x chunk in
 * workgroup memory, then {@link SPLITS} groups of COLS threads each reduce a quarter
 * of the chunk for every row of the tile, one output column per thread, so consecutive
 * threads read consecutive columns of a row of W (coalesced) and W is read once per
 * row tile. The SPLITS partial sums meet in workgroup memory at the end.
 * No gradient: sampling only.
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, runFused } from "../../webgpu/program.js"

/** Output columns per workgroup (one per thread of a split). */
const COLS = 64
/** Thread groups that split each chunk of the reduction. */
const SPLITS = 4
/** Rows per workgroup. */
const ROWS = 16
/** Reduction elements staged in workgroup memory at a time. */
const CHUNK = 64
const WG = COLS * SPLITS

/** How x is turned into the left operand of the product. */
export type DecodePrologue = "none" | "normalize" | "swiglu"

const load: Record<DecodePrologue, string> = {
  none: "return x[row * uniforms.inStride + k];",
  normalize: "return x[row * uniforms.inStride + k];",
  swiglu: `let g = x[row * uniforms.inStride + k];
    return g / (1.0 + exp(-g)) * x[row * uniforms.inStride + uniforms.depth + k];`,
}

const body = (prologue: DecodePrologue, bias: boolean, residual: boolean) => `
  const ROWS = ${ROWS};
  const COLS = ${COLS};
  const CHUNK = ${CHUNK};
  const SPAN = ${CHUNK / SPLITS};
  var<workgroup> xs : array<f32, ${ROWS * CHUNK}>;
  var<workgroup> partial : array<f32, ${ROWS * COLS}>;
  var<workgroup> rowScale : array<f32, ${ROWS}>;
  fn operand(row : i32, k : i32) -> f32 {
    ${load[prologue]}
  }
  fn main(index : i32) {
    let tid = index % ${WG};
    let tile = index / ${WG};
    let colTiles = (uniforms.outCols + COLS - 1) / COLS;
    let row0 = (tile / colTiles) * ROWS;
    let col = (tile % colTiles) * COLS + tid % COLS;
    let split = tid / COLS;
    let depth = uniforms.depth;
    var acc : array<f32, ${ROWS}>;
    // Squares of the staged x elements this thread loads, per row (normalize only).
    var squares : array<f32, ${(ROWS * CHUNK) / WG}>;
    for (var k0 = 0; k0 < depth; k0 += CHUNK) {
      for (var i = 0; i < ${(ROWS * CHUNK) / WG}; i++) {
        let e = tid + i * ${WG};
        let row = row0 + e / CHUNK;
        let k = k0 + e % CHUNK;
        var v = 0.0;
        if (row < uniforms.rows && k < depth) { v = operand(row, k); }
        xs[e] = v;
        squares[i] += v * v;
      }
      workgroupBarrier();
      if (col < uniforms.outCols) {
        for (var j = 0; j < SPAN; j++) {
          let kk = split * SPAN + j;
          let k = k0 + kk;
          if (k < depth) {
            let w = W[k * uniforms.outCols + col];
            for (var r = 0; r < ROWS; r++) { acc[r] += xs[r * CHUNK + kk] * w; }
          }
        }
      }
      workgroupBarrier();
    }
    ${
  prologue === "normalize"
    ? `
    // Row sums of squares: thread tid loaded rows tid / CHUNK + i * (WG / CHUNK) at lane tid % CHUNK.
    for (var i = 0; i < ${(ROWS * CHUNK) / WG}; i++) { xs[tid + i * ${WG}] = squares[i]; }
    workgroupBarrier();
    for (var width = CHUNK / 2; width > 0; width >>= 1) {
      for (var i = 0; i < ${(ROWS * CHUNK) / WG}; i++) {
        let e = tid + i * ${WG};
        if (e % CHUNK < width) { xs[e] += xs[e + width]; }
      }
      workgroupBarrier();
    }
    if (tid < ROWS) { rowScale[tid] = inverseSqrt(xs[tid * CHUNK] / f32(depth) + uniforms.eps); }`
    : `
    if (tid < ROWS) { rowScale[tid] = 1.0; }`
}
    for (var s = 0; s < ${SPLITS}; s++) {
      if (split == s) {
        for (var r = 0; r < ROWS; r++) {
          let p = r * COLS + tid % COLS;
          partial[p] = select(partial[p] + acc[r], acc[r], s == 0);
        }
      }
      workgroupBarrier();
    }
    for (var i = 0; i < ${(ROWS * COLS) / WG}; i++) {
      let e = tid + i * ${WG};
      let row = row0 + e / COLS;
      let outCol = (tile % colTiles) * COLS + e % COLS;
      if (row < uniforms.rows && outCol < uniforms.outCols) {
        var y = partial[e] * rowScale[e / COLS];
        ${bias ? "y += bias[outCol];" : ""}
        ${residual ? "y += residual[row * uniforms.outCols + outCol];" : ""}
        result[row * uniforms.outCols + outCol] = y;
      }
    }
  }`

const kernel = fusedKernel("TurnwiseDecodeLinear", (inputs, attrs, backend) => {
  const prologue = (["none", "normalize", "swiglu"] as const)[attrs.prologue!]!
  const x = inputs.x!
  const w = inputs.W!
  const [rows, inStride] = x.shape as [number, number]
  const [depth, outCols] = w.shape as [number, number]
  const hasBias = inputs.bias !== undefined
  const hasResidual = inputs.residual !== undefined
  const names = ["x", "W", ...(hasBias ? ["bias"] : []), ...(hasResidual ? ["residual"] : [])]
  const tiles = Math.ceil(rows / ROWS) * Math.ceil(outCols / COLS)
  return runFused(
    backend,
    {
      key: `decode_linear_${prologue}_${hasBias ? "b" : ""}${hasResidual ? "r" : ""}`,
      inputs: names,
      outputShape: [rows, outCols],
      invocations: tiles * WG,
      workgroupSize: WG,
      uniforms: "eps : f32, rows : i32, depth : i32, outCols : i32, inStride : i32,",
      body: body(prologue, hasBias, hasResidual),
    },
    names.map((name) => inputs[name]!),
    [
      { type: "float32", data: [attrs.eps ?? 0] },
      ...[rows, depth, outCols, inStride].map((v) => ({ type: "int32" as const, data: [v] })),
    ],
  )
})

/** Options of {@link fusedDecodeLinear}. */
export interface DecodeLinearOptions {
  readonly prologue: DecodePrologue
  /** RMSNorm's epsilon (prologue "normalize"). */
  readonly eps?: number
  /** Added to every row: [out]. */
  readonly bias?: tf.Tensor1D | undefined
  /** Added to the result: [N, out]. */
  readonly residual?: tf.Tensor2D | undefined
}

/**
 * `prologue(x) @ w (+ bias) (+ residual)` in one webgpu shader; see the module comment.
 * x is [N, K] ([N, 2K] for "swiglu"), w is [K, out]; the result is [N, out].
 *
 * @example
 * const qkv = fusedDecodeLinear(x, L.qkv, { prologue: "normalize", eps: 1e-6 }) // [N, P]
 * const next = fusedDecodeLinear(att, L.o, { prologue: "none", residual: x }) // [N, D]
 */
export const fusedDecodeLinear = (x: tf.Tensor2D, w: tf.Tensor2D, options: DecodeLinearOptions): tf.Tensor2D => {
  const depth = options.prologue === "swiglu" ? x.shape[1] / 2 : x.shape[1]
  if (depth !== w.shape[0]) throw new Error(`fusedDecodeLinear: x [${x.shape}] does not fit w [${w.shape}] (prologue ${options.prologue})`)
  const inputs: Record<string, tf.Tensor> = { x, W: w }
  if (options.bias !== undefined) inputs.bias = options.bias
  if (options.residual !== undefined) inputs.residual = options.residual
  return kernel(inputs, { prologue: ["none", "normalize", "swiglu"].indexOf(options.prologue), eps: options.eps ?? 0 }) as tf.Tensor2D
}
