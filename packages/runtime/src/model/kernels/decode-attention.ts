/**
 * Attention of the KV-cached decode (../inference.ts) as one fused webgpu shader:
 * from the rotary-applied, pre-scaled stacked queries and keys `qk` [B, T, H + Hkv, Dh]
 * (queries are heads 0..H-1), the cache `kAll` [B, Hkv, Dh, S] and `vAll` [B, Hkv, S, Dh],
 * and the additive mask `bias` [B, 1, T, S], it returns softmax(q k^T + bias) v merged to
 * [B * T, H * Dh]. One invocation per query row, online softmax, no [T, S] scores stored.
 * It replaces a slice, two batched products, an add and a softmax. No gradient: sampling only.
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, runFused } from "../../webgpu/program.js"

const body = (heads: number, kvHeads: number, dHead: number) => `
  const H = ${heads};
  const HKV = ${kvHeads};
  const G = ${heads / kvHeads};
  const DH = ${dHead};
  fn main(index : i32) {
    if (index < uniforms.rows) {
      let steps = uniforms.steps;
      let slots = uniforms.slots;
      let h = index % H;
      let t = (index / H) % steps;
      let b = index / (H * steps);
      let kvHead = h / G;
      let qBase = ((b * steps + t) * (H + HKV) + h) * DH;
      let kBase = (b * HKV + kvHead) * DH * slots;
      let biasBase = (b * steps + t) * slots;
      var acc : array<f32, DH>;
      var m = -3.402823e+38;
      var l = 0.0;
      for (var s = 0; s < slots; s++) {
        var x = bias[biasBase + s];
        for (var d = 0; d < DH; d++) { x += qk[qBase + d] * kAll[kBase + d * slots + s]; }
        let mNew = max(m, x);
        let correction = exp(m - mNew);
        let p = exp(x - mNew);
        l = l * correction + p;
        for (var d = 0; d < DH; d++) { acc[d] = acc[d] * correction + p * vAll[kBase + s * DH + d]; }
        m = mNew;
      }
      let out = ((b * steps + t) * H + h) * DH;
      for (var d = 0; d < DH; d++) { result[out + d] = acc[d] / l; }
    }
  }`

const kernel = fusedKernel("TurnwiseDecodeAttention", ({ qk, kAll, vAll, bias }, { heads }, backend) => {
  const [batch, steps, stacked, dHead] = qk!.shape as [number, number, number, number]
  const H = heads!
  const kvHeads = stacked - H
  const slots = kAll!.shape[3]!
  const rows = batch * steps * H
  return runFused(
    backend,
    {
      key: `decode_attention_${H}_${kvHeads}_${dHead}`,
      inputs: ["qk", "kAll", "vAll", "bias"],
      outputShape: [batch * steps, H * dHead],
      invocations: rows,
      uniforms: "rows : i32, steps : i32, slots : i32,",
      body: body(H, kvHeads, dHead),
    },
    [qk!, kAll!, vAll!, bias!],
    [rows, steps, slots].map((v) => ({ type: "int32" as const, data: [v] })),
  )
})

/**
 * Cached attention on webgpu; see the module comment for the layouts.
 *
 * @example
 * const merged = fusedDecodeAttention(roped, kAll, vAll, bias, H) // [B*T, H*Dh]
 */
export const fusedDecodeAttention = (qk: tf.Tensor4D, kAll: tf.Tensor4D, vAll: tf.Tensor4D, bias: tf.Tensor4D, heads: number): tf.Tensor2D =>
  kernel({ qk, kAll, vAll, bias }, { heads }) as tf.Tensor2D

/** Threads per query row in the packed attention: one per slot of a chunk while scoring, one per head dimension (or several) while summing values. */
const WG = 64

// One workgroup per query row. The slots are walked in chunks of WG: each thread scores one
// slot of the chunk (q . k + bias) into workgroup memory; then every thread reads the chunk's
// scores, rescales the running softmax (online, per chunk) and adds the chunk's weighted
// values for the head dimensions it owns, so value reads are coalesced across threads.
const packedBody = (heads: number, kvHeads: number, dHead: number) => `
  const H = ${heads};
  const HKV = ${kvHeads};
  const G = ${heads / kvHeads};
  const DH = ${dHead};
  const QK = ${(heads + kvHeads) * dHead};
  const WG = ${WG};
  const OWN = ${Math.ceil(dHead / WG)};
  var<workgroup> q : array<f32, DH>;
  var<workgroup> scores : array<f32, WG>;
  fn main(index : i32) {
    let tid = index % WG;
    let query = index / WG;
    let live = query < uniforms.rows;
    let steps = uniforms.steps;
    let slots = uniforms.slots;
    let h = query % H;
    let t = (query / H) % steps;
    let b = query / (H * steps);
    let qBase = (b * steps + t) * uniforms.packed + h * DH;
    let table = ((b % uniforms.tableRows) * steps + t) * DH;
    for (var d = tid; d < DH; d += WG) {
      if (live) { q[d] = qkv[qBase + d] * cosT[table + d] + qkv[qBase + QK + d] * sinT[table + d]; }
    }
    workgroupBarrier();
    let kvBase = (b * HKV + h / G) * uniforms.capacity * 2 * DH;
    let biasBase = (b * steps + t) * slots;
    var acc : array<f32, OWN>;
    var m = -3.402823e+38;
    var l = 0.0;
    for (var s0 = 0; s0 < slots; s0 += WG) {
      let s = s0 + tid;
      var x = -3.402823e+38;
      if (live && s < slots) {
        let slot = kvBase + s * 2 * DH;
        x = bias[biasBase + s];
        for (var d = 0; d < DH; d++) { x += q[d] * cache[slot + d]; }
      }
      scores[tid] = x;
      workgroupBarrier();
      let count = min(WG, slots - s0);
      var chunkMax = m;
      for (var j = 0; j < count; j++) { chunkMax = max(chunkMax, scores[j]); }
      let correction = exp(m - chunkMax);
      l *= correction;
      for (var i = 0; i < OWN; i++) { acc[i] *= correction; }
      for (var j = 0; j < count; j++) {
        let p = exp(scores[j] - chunkMax);
        l += p;
        let slot = kvBase + (s0 + j) * 2 * DH + DH;
        for (var i = 0; i < OWN; i++) {
          let d = tid + i * WG;
          if (live && d < DH) { acc[i] += p * cache[slot + d]; }
        }
      }
      m = chunkMax;
      workgroupBarrier();
    }
    let out = ((b * steps + t) * H + h) * DH;
    for (var i = 0; i < OWN; i++) {
      let d = tid + i * WG;
      if (live && d < DH) { result[out + d] = acc[i] / l; }
    }
  }`

const packedKernel = fusedKernel("TurnwiseDecodeAttentionPacked", ({ qkv, cosT, sinT, cache, bias }, { heads }, backend) => {
  const [, kvHeads, capacity, twoDHead] = cache!.shape as [number, number, number, number]
  const dHead = twoDHead / 2
  const [batch, steps] = cosT!.shape as [number, number]
  const slots = bias!.shape[bias!.shape.length - 1]!
  const H = heads!
  const rows = batch * steps * H
  return runFused(
    backend,
    {
      key: `decode_attention_packed_${H}_${kvHeads}_${dHead}`,
      inputs: ["qkv", "cosT", "sinT", "cache", "bias"],
      outputShape: [batch * steps, H * dHead],
      invocations: rows * WG,
      workgroupSize: WG,
      uniforms: "rows : i32, steps : i32, slots : i32, capacity : i32, packed : i32, tableRows : i32,",
      body: packedBody(H, kvHeads, dHead),
    },
    [qkv!, cosT!, sinT!, cache!, bias!],
    [rows, steps, slots, capacity, qkv!.shape[1]!, cosT!.shape[0]!].map((v) => ({ type: "int32" as const, data: [v] })),
  )
})

/**
 * Cached attention over the packed cache of ./decode-cache.ts ([B, Hkv, C, 2*Dh], slots
 * 0..S-1 in use, S the mask's last axis), with rotary applied to the queries here: `qkv`
 * is the packed projection [B*T, 2(H+Hkv)Dh + Hkv*Dh] (queries pre-scaled by 1/sqrt(Dh)),
 * cos and sin [B, T, 1, Dh], `bias` the additive mask [B, T, S]. Returns [B*T, H*Dh].
 * One workgroup per query row; slots are scored a chunk at a time in parallel, with an
 * online softmax across chunks, so no [T, S] scores are stored.
 *
 * @example
 * const merged = fusedPackedDecodeAttention(qkv, cos, sin, cache, bias, H) // [B*T, H*Dh]
 */
export const fusedPackedDecodeAttention = (
  qkv: tf.Tensor2D,
  cos: tf.Tensor4D,
  sin: tf.Tensor4D,
  cache: tf.Tensor4D,
  bias: tf.Tensor3D,
  heads: number,
): tf.Tensor2D => packedKernel({ qkv, cosT: cos, sinT: sin, cache, bias }, { heads }) as tf.Tensor2D
