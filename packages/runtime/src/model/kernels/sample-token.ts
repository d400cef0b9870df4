/**
 * Sampling on the device: from next-token logits [B, V], a temperature and one uniform
 * draw u in [0, 1) per row, the sampled token of each row and its log-probability,
 * [B, 2] = [token, logprob] per row (the token id as a float, exact for V < 2^24). The
 * decode then reads 2 numbers per row instead of V.
 *
 * It means what the host's `chooseToken` (../../sampler.ts) means without top-k or
 * top-p: with p_i = exp((logit_i - max logit) / temperature),
 *
 *     greedy (temperature 0): token = the first index of the max logit
 *     otherwise:              token = the first i with p_0 + ... + p_i > u * sum(p)
 *                             (the last index when no prefix exceeds it)
 *     logprob = log p_token - log sum(p)   (under temperature 1 when greedy)
 *
 * Precision. The host computes each p_i in float64, the device in float32; that is the
 * only difference. The sums are exact: each p_i is rounded to a multiple of 2^-40 and
 * added as a 64-bit integer (two 32-bit words), and u (its 32 bits, all an `Rng` draw
 * has) times the total is an exact integer product, so the pick walks the cumulative
 * distribution of the float32 p_i exactly. (Float32 sums were not enough: over 150k
 * tokens their error exceeds a typical token's mass, and a compensated Kahan sum is
 * undone by compilers that reassociate float arithmetic, as Mesa's does.) 1/temperature
 * enters as a pair of floats and exp on a reduced argument, so no float32 rounding is
 * shared by all the p_i (which would tilt the distribution). So device and host choose
 * different tokens only when u * sum(p) falls within the p_i's own float32 rounding of
 * a boundary of the cumulative distribution; logprobs agree to about 1e-5. Measured on
 * the software GPU against `chooseToken` on random logits (3 x normal) at temperatures
 * 0.7, 1 and 1.5: 1 token in 1920 differed at V = 32000 and 1 in 1920 at V = 151936
 * (float32 sums: 4 in 384 and 14 in 384); greedy picks never; logprobs within 1.6e-6.
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
  // Each block's sum of the fixed-point p (see fixedPoint), as high and low words.
  var<workgroup> blockHigh : array<u32, ${WG}>;
  var<workgroup> blockLow : array<u32, ${WG}>;
  var<workgroup> pickBlock : i32;
  var<workgroup> pickBelow : vec2<u32>;
  var<workgroup> pickGoal : vec2<u32>;
  var<workgroup> rowTotal : f32;


  // exp(x) for x <= 0 as exp(r) * 2^k with |r| <= ln(2) / 2: exp's own error may grow
  // with |x| (WGSL allows 3 + 2|x| ulp; Mesa's is biased by about 1.5e-8 |x|), which
  // would tilt the distribution; on the reduced argument it is the same at every x.
  fn expNonPositive(x : f32) -> f32 {
    if (x < -104.0) { return 0.0; }
    let k = round(x * 1.4426950408889634);
    let r = (x - k * 0.693145751953125) - k * 1.428606765330187e-6;
    return ldexp(exp(r), i32(k));
  }

  // p = exp((logit - max) / temperature), with 1 / temperature = scaleHi + scaleLo: the
  // float32 rounding of 1 / temperature alone would shift every p by a factor that grows
  // with its distance from the max, tilting the distribution. The low part enters as the
  // factor exp(d * scaleLo) ~ 1 + d * scaleLo (d * scaleLo is about 1e-7), a form
  // compilers cannot fold back into one product.
  fn weight(logit : f32, rowMax : f32) -> f32 {
    let d = logit - rowMax;
    return expNonPositive(d * uniforms.scaleHi) * (1.0 + d * uniforms.scaleLo);
  }

  // log p, the logprob before normalising.
  fn logWeight(logit : f32, rowMax : f32) -> f32 {
    let d = logit - rowMax;
    return d * uniforms.scaleHi + d * uniforms.scaleLo;
  }

  // p in [0, 1] in units of 2^-40 as (low, high) words, rounded to the nearest unit:
  // integer sums of these are exact in any order, where float sums are not (and compilers
  // may drop the corrections of a compensated float sum).
  fn fixedPoint(p : f32) -> vec2<u32> {
    let scaledP = p * 256.0;
    let whole = floor(scaledP);
    return vec2<u32>(u32(round((scaledP - whole) * 4294967296.0)), u32(whole));
  }

  // (low, high) + (low, high), with the carry.
  fn add64(a : vec2<u32>, b : vec2<u32>) -> vec2<u32> {
    let low = a.x + b.x;
    return vec2<u32>(low, a.y + b.y + select(0u, 1u, low < a.x));
  }

  fn greater64(a : vec2<u32>, b : vec2<u32>) -> bool {
    return a.y > b.y || (a.y == b.y && a.x > b.x);
  }

  // a * b as (low, high) words, through 16-bit halves (WGSL has no 64-bit integers).
  fn mulWide(a : u32, b : u32) -> vec2<u32> {
    let a0 = a & 0xFFFFu;
    let a1 = a >> 16u;
    let b0 = b & 0xFFFFu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    return vec2<u32>((mid << 16u) | (p00 & 0xFFFFu), a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u));
  }

  fn main(index : i32) {
    let row = index / WG;
    let tid = index % WG;
    let vocab = uniforms.vocab;
    let base = row * vocab;
    let chunk = (vocab + WG - 1) / WG;
    let start = min(tid * chunk, vocab);
    // Rows past the batch (none when the launch is exact) own no indices.
    let end = select(start, min(start + chunk, vocab), row < uniforms.rows);

    // Max of the logits over the row, and its first index (the max of z: temperature > 0).
    var localMax = -3.402823e+38;
    var localArg = start;
    for (var v = start; v < end; v++) {
      let z = logits[base + v];
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

    // Each block's sum of p, in fixed point.
    var sum = vec2<u32>(0u, 0u);
    for (var v = start; v < end; v++) { sum = add64(sum, fixedPoint(weight(logits[base + v], rowMax))); }
    blockHigh[tid] = sum.y;
    blockLow[tid] = sum.x;
    workgroupBarrier();

    // The total; the goal floor(u * total) with u = n / 2^32; and the first block whose
    // prefix passes the goal (the host's inverse CDF: the first token whose cumulative
    // mass exceeds u * total), with the mass of the blocks before it.
    if (tid == 0) {
      var total = vec2<u32>(0u, 0u);
      for (var k = 0; k < WG; k++) { total = add64(total, vec2<u32>(blockLow[k], blockHigh[k])); }
      let n = u32(draws[row * 2]) * 65536u + u32(draws[row * 2 + 1]);
      let low = mulWide(n, total.x);
      let high = mulWide(n, total.y);
      let middle = low.y + high.x;
      let goal = vec2<u32>(middle, high.y + select(0u, 1u, middle < low.y));
      var below = vec2<u32>(0u, 0u);
      var hit = -1;
      var hitBelow = below;
      for (var k = 0; k < WG; k++) {
        let next = add64(below, vec2<u32>(blockLow[k], blockHigh[k]));
        if (hit < 0 && greater64(next, goal)) {
          hit = k;
          hitBelow = below;
        }
        below = next;
      }
      pickBlock = hit;
      pickBelow = hitBelow;
      pickGoal = goal;
      rowTotal = f32(total.y) * 0.00390625 + f32(total.x) * 9.094947017729282e-13;
    }
    workgroupBarrier();
    let hit = pickBlock;
    let logZ = log(rowTotal);
    if (row < uniforms.rows) {
      if (uniforms.greedy == 1) {
        if (tid == 0) {
          result[row * 2] = f32(argmax);
          result[row * 2 + 1] = logWeight(logits[base + argmax], rowMax) - logZ;
        }
      } else if (tid == hit) {
        // The same sums as the block's, so the walk passes the goal inside the block.
        var token = end - 1;
        var walked = pickBelow;
        for (var v = start; v < end; v++) {
          walked = add64(walked, fixedPoint(weight(logits[base + v], rowMax)));
          if (greater64(walked, pickGoal)) { token = v; break; }
        }
        result[row * 2] = f32(token);
        result[row * 2 + 1] = logWeight(logits[base + token], rowMax) - logZ;
      } else if (hit < 0 && tid == 0) {
        result[row * 2] = f32(vocab - 1);
        result[row * 2 + 1] = logWeight(logits[base + vocab - 1], rowMax) - logZ;
      }
    }
  }`

const kernel = fusedKernel("TurnwiseSampleToken", ({ logits, draws }, { scaleHi, scaleLo, greedy }, backend) => {
  const [rows, vocab] = logits!.shape as [number, number]
  return runFused(
    backend,
    {
      key: "sample_token",
      inputs: ["logits", "draws"],
      outputShape: [rows, 2],
      invocations: rows * WG,
      workgroupSize: WG,
      uniforms: "rows : i32, vocab : i32, scaleHi : f32, scaleLo : f32, greedy : i32,",
      body,
    },
    [logits!, draws!],
    [
      { type: "int32", data: [rows] },
      { type: "int32", data: [vocab] },
      { type: "float32", data: [scaleHi!] },
      { type: "float32", data: [scaleLo!] },
      { type: "int32", data: [greedy!] },
    ],
  )
})

/** A number as a pair of float32s whose sum is it to about 48 bits. */
const floatPair = (x: number): [number, number] => {
  const hi = Math.fround(x)
  return [hi, Math.fround(x - hi)]
}

/**
 * Sample one token per row of `logits` [B, V] on the webgpu device, with `draws` the
 * rows' uniform draws in [0, 1) (ignored when greedy, temperature 0; used to 32 bits,
 * all an `Rng` draw has). Returns [B, 2]: token id (as a float) and its full-vocabulary
 * logprob per row; see the module comment. Only on webgpu.
 *
 * @example
 * const picked = fusedSampleToken(logits, [rng0.next(), rng1.next()], 0.7) // [2, 2]
 */
export const fusedSampleToken = (logits: tf.Tensor2D, draws: ArrayLike<number>, temperature: number): tf.Tensor2D => {
  const [rows, vocab] = logits.shape
  if (draws.length !== rows) throw new Error(`fusedSampleToken: ${draws.length} draws for ${rows} rows of logits`)
  if (!(vocab > 0 && vocab < 2 ** 24)) throw new Error(`fusedSampleToken: vocabulary of ${vocab} is not in [1, 2^24) (ids travel as float32)`)
  if (!(temperature >= 0)) throw new Error(`fusedSampleToken: temperature must be >= 0, got ${temperature}`)
  const greedy = temperature === 0
  const [scaleHi, scaleLo] = floatPair(greedy ? 1 : 1 / temperature)
  // Each draw as n = floor(u * 2^32), in two 16-bit halves (exact in float32).
  const halves = new Float32Array(2 * rows)
  for (let r = 0; r < rows; r++) {
    const u = draws[r] ?? 0
    if (!(u >= 0 && u < 1)) throw new Error(`fusedSampleToken: draw ${u} of row ${r} is not in [0, 1)`)
    const n = Math.floor(u * 2 ** 32)
    halves[2 * r] = Math.floor(n / 65536)
    halves[2 * r + 1] = n % 65536
  }
  return tf.tidy(() => kernel({ logits, draws: tf.tensor2d(halves, [rows, 2]) }, { scaleHi, scaleLo, greedy: greedy ? 1 : 0 }) as tf.Tensor2D)
}
