/**
 * WebGPU without a GPU: Dawn (the `webgpu` package) on Mesa's software OpenGL
 * (llvmpipe), reached through EGL with no display. It is slow but computes the same
 * shaders as a GPU, so tests and the dispatch benchmark check the webgpu path on any
 * Linux machine that has Mesa's EGL (Debian: libegl1, libegl-mesa0, libgl1-mesa-dri).
 *
 * Dawn's OpenGL backend offers only "compatibility" adapters, so every adapter request
 * is made with `featureLevel: "compatibility"`. `EGL_PLATFORM=surfaceless` lets Mesa
 * open EGL without an X or Wayland display; it is set before Dawn first opens EGL.
 *
 * @category layers
 */
import { Data } from "effect"

/**
 * No WebGPU adapter could be had from Dawn, neither a hardware one nor Mesa's software one.
 *
 * @example
 * throw new SoftwareGpuUnavailableError({ reason: "Dawn found no OpenGL adapter" })
 */
export class SoftwareGpuUnavailableError extends Data.TaggedError("SoftwareGpuUnavailableError")<{
  readonly reason: string
}> {
  override get message(): string {
    return `software WebGPU (Dawn on Mesa's OpenGL) is unavailable: ${this.reason}`
  }
}

/** The parts of Dawn's node bindings (the `webgpu` package) used here. */
interface DawnNode {
  readonly create: (options: Array<string>) => GpuLike
  readonly globals: object
}

/** The part of `navigator.gpu` that tfjs-webgpu and this module call. */
interface GpuLike {
  readonly requestAdapter: (options?: Record<string, unknown>) => Promise<unknown>
}

/** Apt packages that give Dawn a software OpenGL adapter on Debian and Ubuntu. */
export const softwareGpuPackages = "libegl1 libegl-mesa0 libgl1-mesa-dri"

const loadDawn = async (): Promise<DawnNode> => {
  try {
    const specifier: string = "webgpu" // non-literal: tsc and bundlers need not resolve it
    const dawn = (await import(specifier)) as Partial<DawnNode>
    if (typeof dawn.create !== "function" || typeof dawn.globals !== "object") throw new Error("it does not export create() and globals")
    return dawn as DawnNode
  } catch (error) {
    throw new SoftwareGpuUnavailableError({
      reason: `the webgpu package (Dawn) could not be loaded: ${error instanceof Error ? error.message : String(error)}`,
    })
  }
}

const installNavigatorGpu = (gpu: unknown): void => {
  const scope = globalThis as { navigator?: { gpu?: unknown } }
  // Node 21+ has a navigator object of its own (kept, with gpu added); Node 20 has none.
  try {
    if (scope.navigator === undefined) throw new TypeError("no navigator")
    Object.defineProperty(scope.navigator, "gpu", { value: gpu, configurable: true, writable: true })
  } catch {
    Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true })
  }
}

/** Dawn with its default backend (Vulkan, Metal or D3D12): whether it finds an adapter. */
export const hardwareAdapterPresent = async (): Promise<boolean> => {
  const dawn = await loadDawn()
  return (await dawn.create([]).requestAdapter()) !== null
}

/**
 * Make `navigator.gpu` Dawn on Mesa's software OpenGL, replacing any existing one.
 * Call it before the webgpu backend is first started. Rejects with
 * {@link SoftwareGpuUnavailableError} when Mesa's EGL gives no adapter.
 *
 * @example
 * await installSoftwareGpu()
 * await setBackend("webgpu")
 */
export const installSoftwareGpu = async (): Promise<void> => {
  const dawn = await loadDawn()
  Object.assign(globalThis, dawn.globals)
  process.env["EGL_PLATFORM"] ??= "surfaceless"
  const gpu = dawn.create(["backend=opengl"])
  const compatibility = (options: Record<string, unknown> = {}) => gpu.requestAdapter({ ...options, featureLevel: "compatibility" })
  if ((await compatibility()) === null) {
    throw new SoftwareGpuUnavailableError({
      reason: `Dawn found no OpenGL adapter through EGL (EGL_PLATFORM=${
        process.env["EGL_PLATFORM"]
      }); install Mesa's EGL and software driver (apt-get install ${softwareGpuPackages})`,
    })
  }
  installNavigatorGpu({ requestAdapter: compatibility, getPreferredCanvasFormat: () => "rgba8unorm" })
}
