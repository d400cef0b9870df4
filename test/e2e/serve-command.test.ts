/**
 * The `turnwise serve` command as a user runs it: the real executable listens, answers
 * an OpenAI-style request, and exits 0 when it is sent SIGTERM.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const bin = path.resolve(import.meta.dirname, "../../packages/cli/bin/turnwise.mjs")

describe("turnwise serve", () => {
  it("serves /v1/models on the port it reports and stops cleanly on SIGTERM", async () => {
    const child = spawn(process.execPath, [bin, "serve", "--set", "port=0", "--set", "model.preset=tiny", "--set", "modelName=tiny-policy"], {
      stdio: ["ignore", "pipe", "pipe"],
    })
    let output = ""
    const url = await new Promise<string>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        const match = /serving tiny-policy at (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(output)
        if (match !== null) resolve(match[1]!)
      }
      child.stdout.on("data", onData)
      child.stderr.on("data", onData)
      child.once("exit", (code) => reject(new Error(`serve exited with ${code} before listening:\n${output}`)))
    })
    const models = (await (await fetch(`${url}/models`)).json()) as { data: ReadonlyArray<{ id: string }> }
    expect(models.data.map((m) => m.id)).toEqual(["tiny-policy"])
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
    await expect(fetch(`${url}/models`)).rejects.toThrow()
  }, 120_000)
})
