/**
 * The key/value cache of the KV-cached decode on webgpu (../inference.ts): one packed
 * tensor per layer, [B, Hkv, C, 2 * Dh], slot s of head j of row b holding the key
 * (rotary applied) in its first Dh entries and the value in its last Dh. C is a
 * capacity, not the number of slots in use, so the tensor's shape stays the same from
 * token to token (one shader pipeline, one pooled buffer size) and grows by doubling.
 *
 * {@link fusedCacheWrite} applies rotary to the new keys of one step and writes them
 * and the new values into slots past..past+T-1, in one dispatch. It writes in place: the
 * shader's output buffer is the cache's own buffer, and the returned tensor shares it
 * (as a reshape does: same data, one more reference). The cache tensor given in is
 * therefore changed too; only slots at or past `past` change, which that tensor's
 * owner does not read yet, and the caller disposes it for the returned one. No
 * gradient: sampling only.
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, runFused } from "../../webgpu/program.js"

/** The part of tfjs-webgpu's backend the in-place write needs besides running a program. */
interface RefCounted {
  readonly incRef: (dataId: object) => void
}

const body = (heads: number, kvHeads: number, dHead: number) => `
  const H = ${heads};
  const HKV = ${kvHeads};
  const DH = ${dHead};
  const QK = ${(heads + kvHeads) * dHead};
  fn main(index : i32) {
    if (index < uniforms.n) {
      let steps = uniforms.steps;
      let d = index % DH;
      let j = (index / DH) % HKV;
      let t = (index / (DH * HKV)) % steps;
      let b = index / (DH * HKV * steps);
      let row = (b * steps + t) * uniforms.packed;
      let col = (H + j) * DH + d;
      let table = ((b % uniforms.tableRows) * steps + t) * DH + d;
      let key = qkv[row + col] * cosT[table] + qkv[row + QK + col] * sinT[table];
      let slot = ((b * HKV + j) * uniforms.capacity + uniforms.past + t) * 2 * DH;
      result[slot + d] = key;
      result[slot + DH + d] = qkv[row + 2 * QK + j * DH + d];
    }
  }`

const kernel = fusedKernel("TurnwiseDecodeCacheWrite", ({ cache, qkv, cosT, sinT }, { heads, past }, backend) => {
  const [batch, kvHeads, capacity, twoDHead] = cache!.shape as [number, number, number, number]
  const dHead = twoDHead / 2
  const [, steps] = cosT!.shape as [number, number]
  const n = batch * steps * kvHeads * dHead
  ;(backend as RefCounted).incRef(cache!.dataId)
  // A fresh TensorInfo (not the input tensor itself), so the engine tracks a new tensor over the same data.
  const output: tf.TensorInfo = { dataId: cache!.dataId, shape: cache!.shape, dtype: cache!.dtype }
  return runFused(
    backend,
    {
      key: `decode_cache_write_${heads}_${kvHeads}_${dHead}`,
      inputs: ["qkv", "cosT", "sinT"],
      outputShape: cache!.shape,
      invocations: n,
      uniforms: "n : i32, steps : i32, packed : i32, capacity : i32, past : i32, tableRows : i32,",
      body: body(heads!, kvHeads, dHead),
    },
    [qkv!, cosT!, sinT!],
    [n, steps, qkv!.shape[1]!, capacity, past!, cosT!.shape[0]!].map((v) => ({ type: "int32" as const, data: [v] })),
    output,
  )
})

/**
 * Write one step's keys (rotary applied) and values into `cache` at slots
 * past..past+T-1, in place (see the module comment). `qkv` is the packed projection
 * [B*T, 2(H+Hkv)Dh + Hkv*Dh] (queries and keys, their rotate_half copies, values);
 * cos and sin are [B, T, 1, Dh].
 *
 * @example
 * const next = fusedCacheWrite(cache, qkv, cos, sin, H, past) // [B, Hkv, C, 2*Dh], same buffer
 */
export const fusedCacheWrite = (cache: tf.Tensor4D, qkv: tf.Tensor2D, cos: tf.Tensor4D, sin: tf.Tensor4D, heads: number, past: number): tf.Tensor4D => {
  const capacity = cache.shape[2]
  const steps = cos.shape[1]
  if (past + steps > capacity) throw new Error(`fusedCacheWrite: slots ${past}..${past + steps - 1} do not fit a cache of capacity ${capacity}`)
  return kernel({ cache, qkv, cosT: cos, sinT: sin }, { heads, past }) as tf.Tensor4D
}
