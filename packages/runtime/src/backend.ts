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
 * `webgpu` needs a WebGPU implementation: browsers have `navigator.gpu`; in Node it
 * comes from the `webgpu` package (Dawn's node bindings), which is wired into
 * `navigator.gpu` here before @tensorflow/tfjs-backend-webgpu is imported (that
 * package registers its backend only if `navigator.gpu` exists when it loads). A host
 * that sets `navigator.gpu` itself (to pass Dawn options) is left alone. Synchronous
 * reads (`dataSync`) do not work on webgpu in Node (tfjs implements them with
 * OffscreenCanvas), so the sampler, trainer and policy embedding read asynchronously.
 *
 * The union package "@tensorflow/tfjs" is imported (not tfjs-core alone) because it
 * registers the gradients that training needs.
 *
 * @category layers
 */
import { createRequire } from "node:module"
import * as tf from "@tensorflow/tfjs"
import "@tensorflow/tfjs-backend-wasm"
import { Data } from "effect"
import { hardwareAdapterPresent, installSoftwareGpu, SoftwareGpuUnavailableError } from "./webgpu/software-gpu.js"

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
    const hint = this.install === undefined ? "" : ` (install ${this.install.includes(" ") ? "them" : "it"} with: npm install ${this.install})`
    return `backend "${this.backend}" is unavailable: ${this.reason}${hint}`
  }
}

/** Optional packages, and the tfjs backend name each registers. */
const optional: Record<"tensorflow" | "tensorflow-gpu" | "webgpu", { pkg: string; registers: string }> = {
  tensorflow: { pkg: "@tensorflow/tfjs-node", registers: "tensorflow" },
  "tensorflow-gpu": { pkg: "@tensorflow/tfjs-node-gpu", registers: "tensorflow" },
  webgpu: { pkg: "@tensorflow/tfjs-backend-webgpu", registers: "webgpu" },
}

const firstLine = (error: unknown): string => (error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error))

const importOptional = async (backend: BackendName, pkg: string, why = ""): Promise<unknown> => {
  try {
    // A non-literal specifier keeps bundlers and tsc from requiring the package.
    const specifier: string = pkg
    return (await import(specifier)) as unknown
  } catch (error) {
    throw new BackendUnavailableError({ backend, install: pkg, reason: `${why}could not load ${pkg}: ${firstLine(error)}` })
  }
}

/** What Dawn's node bindings (the `webgpu` package) export. */
interface DawnNode {
  /** A GPU object (navigator.gpu) over Dawn, with Dawn toggles such as "backend=vulkan". */
  readonly create: (options: Array<string>) => unknown
  /** GPUBufferUsage, GPUMapMode, GPUTextureUsage, ...: globals the WebGPU backend reads. */
  readonly globals: object
}

/** Whether a package can be found from here, without loading it. */
const resolvable = (pkg: string): boolean => {
  try {
    createRequire(import.meta.url).resolve(pkg)
    return true
  } catch {
    return false
  }
}

/**
 * How `webgpu` may use a software GPU (Dawn on Mesa's OpenGL, ./webgpu/software-gpu.ts):
 * `never` (the default: a machine without a GPU adapter fails), `fallback` (only when no
 * hardware adapter is found; tests and benchmarks use it), `always`.
 */
export type SoftwareGpuMode = "never" | "fallback" | "always"

/** Options of {@link setBackend}. */
export interface SetBackendOptions {
  readonly softwareGpu?: SoftwareGpuMode
}

const useSoftwareGpu = async (mode: SoftwareGpuMode): Promise<void> => {
  if (mode === "never") return
  const scope = globalThis as { navigator?: { gpu?: { requestAdapter?: () => Promise<unknown> } } }
  try {
    if (mode === "fallback") {
      const current = scope.navigator?.gpu
      const found = current?.requestAdapter !== undefined ? (await current.requestAdapter()) !== null : await hardwareAdapterPresent()
      if (found) return
    }
    await installSoftwareGpu()
  } catch (error) {
    if (error instanceof SoftwareGpuUnavailableError) {
      throw new BackendUnavailableError({
        backend: "webgpu",
        install: undefined,
        reason: `${mode === "fallback" ? "no hardware WebGPU adapter, and " : ""}${error.message}`,
      })
    }
    throw error
  }
}

/**
 * Get webgpu ready to register: name every missing package at once, then give Node a
 * `navigator.gpu` from the `webgpu` package, unless something (a browser, Deno, or a
 * host app choosing Dawn options) already provides one.
 */
const prepareWebGpu = async (softwareGpu: SoftwareGpuMode): Promise<void> => {
  const scope = globalThis as { navigator?: { gpu?: unknown } }
  const needsDawn = scope.navigator?.gpu === undefined || softwareGpu !== "never"
  const missing = [optional.webgpu.pkg, ...(needsDawn ? ["webgpu"] : [])].filter((pkg) => !resolvable(pkg))
  if (missing.length > 0) {
    throw new BackendUnavailableError({
      backend: "webgpu",
      install: missing.join(" "),
      reason: `${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} not installed${
        needsDawn ? " (in Node, navigator.gpu comes from the webgpu package: Dawn's bindings)" : ""
      }`,
    })
  }
  if (softwareGpu !== "never") return useSoftwareGpu(softwareGpu)
  if (!needsDawn) return
  const dawn = (await importOptional("webgpu", "webgpu", "Node has no navigator.gpu and the webgpu package (Dawn) provides it; ")) as Partial<DawnNode>
  if (typeof dawn.create !== "function" || typeof dawn.globals !== "object") {
    throw new BackendUnavailableError({ backend: "webgpu", install: "webgpu", reason: "the webgpu package does not export create() and globals" })
  }
  Object.assign(globalThis, dawn.globals)
  const gpu = dawn.create([])
  // Node 21+ has a navigator object of its own (kept, with gpu added); Node 20 has none.
  try {
    if (scope.navigator === undefined) throw new TypeError("no navigator")
    Object.defineProperty(scope.navigator, "gpu", { value: gpu, configurable: true, writable: true })
  } catch {
    Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true })
  }
}

/**
 * Start a backend and make it the active one; resolves to the active backend's name
 * (print it at start). Rejects with {@link BackendUnavailableError}. `softwareGpu`
 * applies to `webgpu` only, and only the first time it starts in a process.
 *
 * @example
 * const name = await setBackend("wasm")
 * console.log(`backend: ${name}`)
 * await setBackend("webgpu", { softwareGpu: "fallback" }) // Mesa's llvmpipe where there is no GPU
 */
export const setBackend = async (name: BackendName = "wasm", options: SetBackendOptions = {}): Promise<string> => {
  let tfName: string = name
  if (name === "tensorflow" || name === "tensorflow-gpu" || name === "webgpu") {
    const entry = optional[name]
    // Before the backend package loads: it registers itself only when navigator.gpu exists.
    if (name === "webgpu") await prepareWebGpu(options.softwareGpu ?? "never")
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
    // The package loaded, so installing it again would not help: the usual cause is the
    // machine (no GPU adapter, no driver, CUDA libraries not found).
    const hint = entry === undefined
      ? ""
      : ` although ${entry.pkg} loaded; ${
        name === "webgpu" ? "no WebGPU adapter was found (is there a GPU and a Vulkan, Metal or D3D12 driver?)" : "see the messages tfjs printed above"
      }`
    throw new BackendUnavailableError({
      backend: name,
      install: undefined,
      reason: `tfjs could not initialise the "${tfName}" backend${hint}`,
    })
  }
  return tf.getBackend()
}
