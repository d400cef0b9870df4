/**
 * The served endpoint against the plain sampler on the same model.
 *
 * One JSON line per path, for `--requests` sequential requests of the same prompt:
 *
 * - `served`: `POST /v1/chat/completions` (at most `--new` tokens) through the official
 *   `openai` client over HTTP on 127.0.0.1, non-streaming for requests/s, streaming for
 *   the time to the first content chunk. A reply may end early (end of sequence, the
 *   format's stop strings).
 * - `sampler`: a one-row KV-cached session per request, one `generateAsync` call
 *   generating as many tokens as the served reply had (what the built-in rollout
 *   does); time to first token is a separate session's prefill plus its first token.
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

// The endpoint through the openai client. The byte model's eos and the format's stop
// strings can end a reply early; the sampler path then generates as many tokens.
const client = new OpenAI({ baseURL: server.url, apiKey: "unused", maxRetries: 0 })
const body = { model: "turnwise", messages: [{ role: "user" as const, content: question }], max_tokens: newTokens, temperature: 1 }
const replyTokens: Array<number> = []
const t0 = performance.now()
for (let r = 0; r < requests; r++) {
  const reply = await client.chat.completions.create({ ...body, seed: r })
  replyTokens.push(Math.max(1, reply.usage?.completion_tokens ?? 1))
}
const servedTotal = (performance.now() - t0) / 1000
const sampled = replyTokens.reduce((a, b) => a + b, 0)
const ttft: Array<number> = []
const firstChunk: Array<number> = []
for (let r = 0; r < requests; r++) {
  const start = performance.now()
  const stream = await client.chat.completions.create({ ...body, seed: r, stream: true })
  let seen = false
  let any = false
  for await (const chunk of stream) {
    if (!any) {
      firstChunk.push((performance.now() - start) / 1000)
      any = true
    }
    if (!seen && (chunk.choices[0]?.delta.content ?? "") !== "") {
      ttft.push((performance.now() - start) / 1000)
      seen = true
    }
  }
}

// The plain sampler, same model, same prompt, the same number of tokens per request.
const samplerTimes: Array<number> = []
const samplerTtft: Array<number> = []
for (let r = 0; r < requests; r++) {
  let t1 = performance.now()
  const session = createSamplingSession(model, { rows: 1, seed: r, tokenizer })
  session.append(0, prompt)
  await session.generateAsync([0], { maxNewTokens: replyTokens[r]!, temperature: 1, eos: null })
  session.dispose()
  samplerTimes.push((performance.now() - t1) / 1000)
  t1 = performance.now()
  const first = createSamplingSession(model, { rows: 1, seed: r, tokenizer })
  first.append(0, prompt)
  await first.generateAsync([0], { maxNewTokens: 1, temperature: 1, eos: null })
  first.dispose()
  samplerTtft.push((performance.now() - t1) / 1000)
}
const samplerTotal = samplerTimes.reduce((a, b) => a + b, 0)
const common = {
  bench: "serve",
  preset,
  backend: args.backend,
  requests,
  maxNewTokens: newTokens,
  promptTokens: prompt.length,
  meanReplyTokens: sampled / requests,
}
console.log(
  JSON.stringify({ ...common, path: "sampler", requestsPerS: requests / samplerTotal, tokensPerS: sampled / samplerTotal, ttftMs: median(samplerTtft) * 1000 }),
)
console.log(
  JSON.stringify({
    ...common,
    path: "served",
    requestsPerS: requests / servedTotal,
    tokensPerS: sampled / servedTotal,
    // First chunk: the role chunk goes out with the first visible content; a reply whose first
    // tokens could begin a marker (or a split character) holds them back.
    ttftMs: ttft.length === 0 ? null : median(ttft) * 1000,
    firstChunkMs: firstChunk.length === 0 ? null : median(firstChunk) * 1000,
    ttftSamples: ttft.length,
  }),
)
await server.close()
