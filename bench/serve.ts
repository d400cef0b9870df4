/**
 * The served endpoint against the plain sampler on the same model.
 *
 * One JSON line per path, for `--requests` sequential requests of `--new` tokens each
 * (no eos, so every reply runs to its length, and the same prompt):
 *
 * - `sampler`: a one-row KV-cached session per request, one `generateAsync` call for
 *   all the tokens (what the built-in rollout does); time to first token is a
 *   separate session's prefill plus its first token.
 * - `served`: `POST /v1/chat/completions` through the official `openai` client over
 *   HTTP on 127.0.0.1, non-streaming for requests/s, streaming for the time to the
 *   first content chunk.
 *
 * Usage: npx tsx bench/serve.ts [--preset compact] [--requests 8] [--new 32] [--backend wasm]
 */
import { parseArgs } from "node:util"
import OpenAI from "openai"
import { serve } from "../packages/cli/src/serve/index.js"
import { createSamplingSession } from "../packages/runtime/src/sampler.js"
import { byteChatFormat } from "../packages/cli/src/serve/chat-format.js"

const { values: args } = parseArgs({
  options: {
    preset: { type: "string", default: "compact" },
    requests: { type: "string", default: "8" },
    new: { type: "string", default: "32" },
    backend: { type: "string", default: "wasm" },
  },
})
const requests = Number(args.requests)
const newTokens = Number(args.new)
const preset = args.preset as "tiny" | "compact" | "small" | "medium"

const server = await serve({ port: 0, model: { preset, seed: 1 }, backend: args.backend as "wasm", maxNewTokens: newTokens })
const { model, tokenizer } = server.runtime
const question = "Write a few words about the sea."
const prompt = [tokenizer.bos, ...tokenizer.encode(byteChatFormat.prompt([{ role: "user", content: question, toolCalls: [], toolCallId: null }], []))]
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

// The plain sampler, same model, same prompt.
const samplerTimes: Array<number> = []
const samplerTtft: Array<number> = []
for (let r = 0; r < requests; r++) {
  let t0 = performance.now()
  const session = createSamplingSession(model, { rows: 1, seed: r, tokenizer })
  session.append(0, prompt)
  await session.generateAsync([0], { maxNewTokens: newTokens, temperature: 1, eos: null })
  session.dispose()
  samplerTimes.push((performance.now() - t0) / 1000)
  t0 = performance.now()
  const first = createSamplingSession(model, { rows: 1, seed: r, tokenizer })
  first.append(0, prompt)
  await first.generateAsync([0], { maxNewTokens: 1, temperature: 1, eos: null })
  first.dispose()
  samplerTtft.push((performance.now() - t0) / 1000)
}
const samplerTotal = samplerTimes.reduce((a, b) => a + b, 0)
console.log(JSON.stringify({ bench: "serve", path: "sampler", preset, backend: args.backend, requests, newTokens, promptTokens: prompt.length, requestsPerS: requests / samplerTotal, tokensPerS: (requests * newTokens) / samplerTotal, ttftMs: median(samplerTtft) * 1000 }))

// The endpoint through the openai client. The byte model's eos can end a reply early,
// so tokens/s counts the tokens actually sampled.
const client = new OpenAI({ baseURL: server.url, apiKey: "unused", maxRetries: 0 })
const body = { model: "turnwise", messages: [{ role: "user" as const, content: question }], max_tokens: newTokens, temperature: 1 }
let sampled = 0
const t0 = performance.now()
for (let r = 0; r < requests; r++) {
  const reply = await client.chat.completions.create({ ...body, seed: r })
  sampled += reply.usage?.completion_tokens ?? 0
}
const servedTotal = (performance.now() - t0) / 1000
const ttft: Array<number> = []
for (let r = 0; r < requests; r++) {
  const start = performance.now()
  const stream = await client.chat.completions.create({ ...body, seed: r, stream: true })
  let seen = false
  for await (const chunk of stream) {
    if (!seen && (chunk.choices[0]?.delta.content ?? "") !== "") {
      ttft.push((performance.now() - start) / 1000)
      seen = true
    }
  }
}
console.log(JSON.stringify({ bench: "serve", path: "served", preset, backend: args.backend, requests, newTokens, promptTokens: prompt.length, requestsPerS: requests / servedTotal, tokensPerS: sampled / servedTotal, meanReplyTokens: sampled / requests, ttftMs: ttft.length === 0 ? null : median(ttft) * 1000, ttftSamples: ttft.length }))
await server.close()
