/**
 * Model sizes the benchmarks take by name (`--sizes`): the model presets (`medium` is
 * about 9.5M parameters), plus `100m` (about 101M), the large size of the GPU
 * throughput comparison. It lives here rather than among the presets because nothing
 * trains it on the built-in task.
 */
import type { ModelConfig } from "../packages/runtime/src/model/config.js"
import { presets } from "../packages/runtime/src/model/config.js"

export const benchSizes: Readonly<Record<string, ModelConfig>> = {
  ...presets,
  "100m": { ...presets.medium, dModel: 768, nLayers: 16, nHeads: 12, nKvHeads: 4, dFf: 2048, maxSeqLen: 1024 },
}

/**
 * The config of a size name; throws naming the known sizes.
 *
 * @example
 * benchSize("100m").dModel // 768
 */
export const benchSize = (name: string): ModelConfig => {
  const config = benchSizes[name]
  if (config === undefined) throw new Error(`unknown size "${name}"; known: ${Object.keys(benchSizes).join(", ")}`)
  return config
}
