import * as tf from "@tensorflow/tfjs"
import { createRequire } from "node:module"
import { afterAll, describe, expect, it } from "vitest"
import { BackendUnavailableError, setBackend } from "../../packages/runtime/src/backend.js"

const installed = (pkg: string): boolean => {
  try {
    createRequire(import.meta.url).resolve(pkg)
    return true
  } catch {
    return false
  }
}

describe("setBackend", () => {
  afterAll(async () => {
    await setBackend("wasm")
  })

  it.each(["wasm", "cpu"] as const)("starts %s and computes on it", async (name) => {
    expect(await setBackend(name)).toBe(name)
    expect(tf.getBackend()).toBe(name)
    const y = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]]))
    expect(Array.from(y.dataSync())).toEqual([11])
  })

  it.each(
    [
      ["tensorflow", "@tensorflow/tfjs-node"],
      ["tensorflow-gpu", "@tensorflow/tfjs-node-gpu"],
      ["webgpu", "@tensorflow/tfjs-backend-webgpu"],
    ] as const,
  )("%s without its package names %s", async (name, pkg) => {
    if (installed(pkg)) return // only meaningful where the optional package is absent (the default install)
    const error = await setBackend(name).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(BackendUnavailableError)
    expect(String((error as BackendUnavailableError).message)).toContain(`npm install ${pkg}`)
    expect(tf.getBackend()).not.toBe(name)
  })

  // Dawn on Mesa's llvmpipe where Dawn finds no GPU (see test/runtime/backends.test.ts for the skip switch).
  it.skipIf(process.env["TURNWISE_SKIP_WEBGPU"] === "1")(
    "webgpu with softwareGpu \"fallback\" starts here, on the GPU or the software GPU, and computes",
    async () => {
      expect(await setBackend("webgpu", { softwareGpu: "fallback" })).toBe("webgpu")
      const y = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]]))
      expect(Array.from(await y.data())).toEqual([11]) // asynchronously: webgpu cannot read synchronously in Node
    },
  )
})
