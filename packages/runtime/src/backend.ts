/**
 * Choosing the tfjs backend the model runs on.
 *
 * `wasm` is the default: it ships with the package, runs everywhere Node does, and
 * is several times faster than the pure-JS `cpu` fallback. `tensorflow` and
 * `tensorflow-gpu` (libtensorflow through @tensorflow/tfjs-node / -gpu) and `webgpu`
 * are optional: their packages are never dependencies (tfjs-node's install step
 * downloads libtensorflow and fails offline), so they are imported only when asked
 * for, and a missing package raises {@link BackendUnavailableError} naming what to
 * install.
 *
 * The union package "@tensorflow/tfjs" is imported (not tfjs-core alone) because it
 * registers the gradients that training needs.
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import "@tensorflow/tfjs-backend-wasm"
import { Data } from "effect"

/** Backends Turnwise knows how to start (see {@link setBackend}). */
export type BackendName = "wasm" | "cpu" | "tensorflow" | "tensorflow-gpu" | "webgpu"

/**
 * Every backend name, for CLI help and validation.
 *
 * @example
 * if (!backendNames.includes(flag)) console.error(`--backend must be one of ${backendNames.join(", ")}`)
 */
export const backendNames: ReadonlyArray<BackendName> = ["wasm", "cpu", "tensorflow", "tensorflow-gpu", "webgpu"]

/**
 * A requested backend could not be started.
 *
 * @example
 * throw new BackendUnavailableError({ backend: "tensorflow", install: "@tensorflow/tfjs-node", reason: "module not found" })
 */
export class BackendUnavailableError extends Data.TaggedError("BackendUnavailableError")<{
  readonly backend: BackendName
  /** npm package that provides it, or undefined for built-in backends. */
  readonly install: string | undefined
  readonly reason: string
}> {
  override get message(): string {
    const hint = this.install === undefined ? "" : ` (install it with: npm install ${this.install})`
    return `backend "${this.backend}" is unavailable: ${this.reason}${hint}`
  }
}

/** Optional packages, and the tfjs backend name each registers. */
const optional: Record<"tensorflow" | "tensorflow-gpu" | "webgpu", { pkg: string; registers: string }> = {
  tensorflow: { pkg: "@tensorflow/tfjs-node", registers: "tensorflow" },
  "tensorflow-gpu": { pkg: "@tensorflow/tfjs-node-gpu", registers: "tensorflow" },
  webgpu: { pkg: "@tensorflow/tfjs-backend-webgpu", registers: "webgpu" },
}

const importOptional = async (backend: BackendName, pkg: string): Promise<void> => {
  try {
    // A non-literal specifier keeps bundlers and tsc from requiring the package.
    const specifier: string = pkg
    await import(specifier)
  } catch (error) {
    throw new BackendUnavailableError({
      backend,
      install: pkg,
      reason: `could not load ${pkg}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`,
    })
  }
}

/**
 * Start a backend and make it the active one; resolves to the active backend's name
 * (print it at start). Rejects with {@link BackendUnavailableError}.
 *
 * @example
 * const name = await setBackend("wasm")
 * console.log(`backend: ${name}`)
 */
export const setBackend = async (name: BackendName = "wasm"): Promise<string> => {
  let tfName: string = name
  if (name === "tensorflow" || name === "tensorflow-gpu" || name === "webgpu") {
    const entry = optional[name]
    await importOptional(name, entry.pkg)
    tfName = entry.registers
  }
  let ok: boolean
  try {
    ok = await tf.setBackend(tfName)
    await tf.ready()
  } catch {
    ok = false
  }
  if (!ok || tf.getBackend() !== tfName) {
    const entry = name === "wasm" || name === "cpu" ? undefined : optional[name]
    throw new BackendUnavailableError({
      backend: name,
      install: entry?.pkg,
      reason: `tfjs could not initialise the "${tfName}" backend`,
    })
  }
  return tf.getBackend()
}
