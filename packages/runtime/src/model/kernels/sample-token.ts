/**
 * Sampling on the device: from next-token logits [B, V], a temperature and one uniform
 * draw u in [0, 1) per row, the sampled token of each row and its log-probability,
 * [B, 2] = [token, logprob] per row (the token id as a float, exact for V < 2^24). The
 * decode then reads 2 numbers per row instead of V.
 *
 * It means what the host's `chooseToken` (../../sampler.ts) means without top-k or
 * top-p: with z = logits / temperature (logits when greedy), p_i = exp(z_i - max z),
 *
 *     greedy (temperature 0): token = the first index of max z
 *     otherwise:              token = the first i with p_0 + ... + p_i > u * sum(p)
 *                             (the last index when no prefix exceeds it)
 *     logprob = z[token] - max z - log sum(p)   (z under temperature 1 when greedy)
 *
 * The device sums in float32 where the host sums in float64, so the two can choose
 * different tokens only when u * sum(p) falls within float32 rounding of a boundary of
 * the cumulative distribution (u itself reaches the shader as a float32); logprobs
 * agree to about 1e-5.
 *
 * One workgroup per row. Thread t owns the contiguous block of indices
 * [t * chunk, (t + 1) * chunk), so block sums in thread order are prefix sums in index
 * order: a tree reduction finds the max (first index on ties), thread 0 adds the block
 * sums in order and finds the block where the prefix passes u * sum, and that block's
 * thread walks its indices to the token. No gradient: sampling only.
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, runFused } from "../../webgpu/program.js"

/** Threads per row (WebGPU compatibility adapters allow at most 128 per workgroup). */
const WG = 64

const body = `
  const WG = ${WG};
  var<workgroup> bestValue : array<f32, ${WG}>;
  var<workgroup> bestIndex : array<i32, ${WG}>;
  var<workgroup> blockSum : array<f32, ${WG}>;
  var<workgroup> pickBlock : i32;
  var<workgroup> pickBelow : f32;
  var<workgroup> pickGoal : f32;
  var<workgroup> rowTotal : f32;
  fn main(index : i32) {
    let row = index / WG;
    let tid = index % WG;
    let vocab = uniforms.vocab;
    let scale = uniforms.scale;
    let base = row * vocab;
    let chunk = (vocab + WG - 1) / WG;
    let start = min(tid * chunk, vocab);
    // Rows past the batch (none when the launch is exact) own no indices.
    let end = select(start, min(start + chunk, vocab), row < uniforms.rows);

    // Max of z over the row, and its first index.
    var localMax = -3.402823e+38;
    var localArg = start;
    for (var v = start; v < end; v++) {
      let z = scale * logits[base + v];
      if (z > localMax) { localMax = z; localArg = v; }
    }
    bestValue[tid] = localMax;
    bestIndex[tid] = localArg;
    workgroupBarrier();
    for (var width = WG / 2; width > 0; width >>= 1) {
      if (tid < width) {
        let value = bestValue[tid + width];
        let at = bestIndex[tid + width];
        if (value > bestValue[tid] || (value == bestValue[tid] && at < bestIndex[tid])) {
          bestValue[tid] = value;
          bestIndex[tid] = at;
        }
      }
      workgroupBarrier();
    }
    let rowMax = bestValue[0];
    let argmax = bestIndex[0];

    // Each block's sum of exp(z - max), in index order.
    var localSum = 0.0;
    for (var v = start; v < end; v++) { localSum += exp(scale * logits[base + v] - rowMax); }
    blockSum[tid] = localSum;
    workgroupBarrier();

    // The total and the block where the prefix passes u * total (-1: none does).
    if (tid == 0) {
      var total = 0.0;
      for (var k = 0; k < WG; k++) { total += blockSum[k]; }
      let goal = select(draws[row] * total, 0.0, row >= uniforms.rows);
      var prefix = 0.0;
      var hit = -1;
      var below = 0.0;
      for (var k = 0; k < WG; k++) {
        let next = prefix + blockSum[k];
        if (hit < 0 && next > goal) { hit = k; below = prefix; }
        prefix = next;
      }
      pickBlock = hit;
      pickBelow = below;
      pickGoal = goal;
      rowTotal = total;
    }
    workgroupBarrier();
    let hit = pickBlock;
    let logZ = rowMax + log(rowTotal);
    if (row < uniforms.rows) {
      if (uniforms.greedy == 1) {
        if (tid == 0) {
          result[row * 2] = f32(argmax);
          result[row * 2 + 1] = scale * logits[base + argmax] - logZ;
        }
      } else if (tid == hit) {
        // Walk the block; rounding can leave the walk short of the goal: the block's last index.
        var token = end - 1;
        var running = pickBelow;
        for (var v = start; v < end; v++) {
          running += exp(scale * logits[base + v] - rowMax);
          if (running > pickGoal) { token = v; break; }
        }
        result[row * 2] = f32(token);
        result[row * 2 + 1] = scale * logits[base + token] - logZ;
      } else if (hit < 0 && tid == 0) {
        result[row * 2] = f32(vocab - 1);
        result[row * 2 + 1] = scale * logits[base + vocab - 1] - logZ;
      }
    }
  }`

const kernel = fusedKernel("TurnwiseSampleToken", ({ logits, draws }, { scale, greedy }, backend) => {
  const [rows, vocab] = logits!.shape as [number, number]
  return runFused(
    backend,
    {
      key: "sample_token",
      inputs: ["logits", "draws"],
      outputShape: [rows, 2],
      invocations: rows * WG,
      workgroupSize: WG,
      uniforms: "rows : i32, vocab : i32, scale : f32, greedy : i32,",
      body,
    },
    [logits!, draws!],
    [
      { type: "int32", data: [rows] },
      { type: "int32", data: [vocab] },
      { type: "float32", data: [scale!] },
      { type: "int32", data: [greedy!] },
    ],
  )
})

/**
 * Sample one token per row of `logits` [B, V] on the webgpu device, with `draws` [B]
 * the rows' uniform draws in [0, 1) (ignored when greedy, temperature 0). Returns
 * [B, 2]: token id (as a float) and its full-vocabulary logprob per row; see the module
 * comment. Only on webgpu.
 *
 * @example
 * const picked = fusedSampleToken(logits, tf.tensor1d(draws), 0.7) // [B, 2]
 */
export const fusedSampleToken = (logits: tf.Tensor2D, draws: tf.Tensor1D, temperature: number): tf.Tensor2D => {
  const [rows, vocab] = logits.shape
  if (draws.shape[0] !== rows) throw new Error(`fusedSampleToken: ${draws.shape[0]} draws for ${rows} rows of logits`)
  if (!(vocab > 0 && vocab < 2 ** 24)) throw new Error(`fusedSampleToken: vocabulary of ${vocab} is not in [1, 2^24) (ids travel as float32)`)
  if (!(temperature >= 0)) throw new Error(`fusedSampleToken: temperature must be >= 0, got ${temperature}`)
  const greedy = temperature === 0
  return kernel({ logits, draws }, { scale: greedy ? 1 : 1 / temperature, greedy: greedy ? 1 : 0 }) as tf.Tensor2D
}
