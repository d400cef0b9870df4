/**
 * The HTTP face of a served policy, on node:http: OpenAI's chat-completions and
 * models routes, plus the episode routes this server adds.
 *
 *   POST /v1/chat/completions        non-streaming, or server-sent events with `stream: true`
 *   GET  /v1/models
 *   GET  /v1/episodes/{id}           the recorded episode (token ids, log-probs, branches)
 *   POST /v1/episodes/{id}/reward    {"reward": 1} or {"reward": [0, 0.5, 1]} (one per turn)
 *   POST /v1/train                   one training step on the rewarded episodes
 *
 * A request joins an episode by the `x-turnwise-episode` header or the request's
 * `metadata.turnwise_episode`; `x-turnwise-group` / `metadata.turnwise_group` name the
 * group (the task) when its episodes' prompts differ. Every reply carries the policy
 * version in the `x-turnwise-policy-version` header, and chat replies in their
 * `turnwise` field too. Refused requests get OpenAI's error body and a 4xx status.
 *
 * @category constructors
 */
import { randomUUID } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Cause, Effect, Exit } from "effect"
import { errorBody, invalidRequest, ServeRequestError } from "./errors.js"
import { decodeChatRequest } from "./request.js"
import type { Completion, ServedPolicyShape } from "./ServedPolicy.js"

/** Options of {@link startHttpServer}. */
export interface HttpOptions {
  readonly host: string
  /** 0 picks a free port. */
  readonly port: number
  /** Required bearer token ("" = none). */
  readonly apiKey: string
  /** Largest accepted request body, in bytes. */
  readonly maxBodyBytes: number
}

/** A listening server. */
export interface HttpServer {
  /** Base URL of the OpenAI-compatible API (ends in /v1). */
  readonly url: string
  readonly port: number
  readonly close: () => Promise<void>
}

const readBody = (req: http.IncomingMessage, limit: number): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        reject(
          new ServeRequestError({
            status: 413,
            type: "invalid_request_error",
            param: null,
            code: "request_too_large",
            message: `the request body is over ${limit} bytes`,
          }),
        )
        req.destroy()
      } else chunks.push(chunk)
    })
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw invalidRequest("invalid_json", `the body is not JSON (${error instanceof Error ? error.message : String(error)})`)
  }
}

/** The OpenAI form of a reply's message. */
const wireMessage = (c: Completion) => ({
  role: "assistant" as const,
  content: c.message.content === "" && c.message.toolCalls.length > 0 ? null : c.message.content,
  refusal: null,
  ...(c.message.toolCalls.length === 0
    ? {}
    : { tool_calls: c.message.toolCalls.map((t) => ({ id: t.id, type: "function" as const, function: { name: t.name, arguments: t.arguments } })) }),
})

const turnwiseField = (c: Completion) => ({
  policy_version: c.policyVersion,
  token_ids: c.tokenIds,
  logprobs: c.logprobs,
  episode: c.episode === null ? null : { id: c.episode.id, branch: c.episode.branch, turn: c.episode.turn, mismatch: c.episode.mismatch },
})

const usageOf = (c: Completion) => ({
  prompt_tokens: c.usage.promptTokens,
  completion_tokens: c.usage.completionTokens,
  total_tokens: c.usage.promptTokens + c.usage.completionTokens,
})

/**
 * Serve `served` over HTTP until `close`.
 *
 * @example
 * const server = await startHttpServer(served, { host: "127.0.0.1", port: 0, apiKey: "", maxBodyBytes: 4 << 20 })
 * // new OpenAI({ baseURL: server.url, apiKey: "unused" })
 */
export const startHttpServer = (served: ServedPolicyShape, options: HttpOptions): Promise<HttpServer> => {
  const run = async <A>(effect: Effect.Effect<A, ServeRequestError>): Promise<A> => {
    const exit = await Effect.runPromiseExit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }

  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body)
    res.writeHead(status, { "content-type": "application/json", "x-turnwise-policy-version": String(served.policyVersion()) })
    res.end(text)
  }

  const chat = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const request = decodeChatRequest(parseJson(await readBody(req, options.maxBodyBytes)))
    if (request.model !== served.modelName) {
      throw new ServeRequestError({
        status: 404,
        type: "invalid_request_error",
        param: "model",
        code: "model_not_found",
        message: `the model "${request.model}" does not exist; this server serves "${served.modelName}"`,
      })
    }
    const header = (name: string) => {
      const value = req.headers[name]
      return typeof value === "string" && value !== "" ? value : null
    }
    const where = {
      episodeId: header("x-turnwise-episode") ?? request.metadata["turnwise_episode"] ?? null,
      group: header("x-turnwise-group") ?? request.metadata["turnwise_group"] ?? null,
    }
    if (!request.stream) {
      const c = await run(served.complete(request, where))
      send(res, 200, {
        id: c.id,
        object: "chat.completion",
        created: c.created,
        model: c.model,
        choices: [{ index: 0, message: wireMessage(c), logprobs: null, finish_reason: c.finishReason }],
        usage: usageOf(c),
        turnwise: turnwiseField(c),
      })
      return
    }
    // Headers go out with the first piece of content, so a refused request still gets a JSON error.
    const created = Math.floor(Date.now() / 1000)
    const streamId = `chatcmpl-${randomUUID()}`
    let streamed = ""
    let started = false
    const chunk = (delta: unknown, finish: string | null, extra: Record<string, unknown> = {}) =>
      res.write(
        `data: ${
          JSON.stringify({
            id: streamId,
            object: "chat.completion.chunk",
            created,
            model: served.modelName,
            choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
            ...extra,
          })
        }\n\n`,
      )
    const start = () => {
      if (started) return
      started = true
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
        "x-turnwise-policy-version": String(served.policyVersion()),
      })
      chunk({ role: "assistant", content: "" }, null)
    }
    try {
      const c = await run(
        served.complete(request, where, (delta) => {
          start()
          streamed += delta
          chunk({ content: delta }, null)
        }),
      )
      start()
      const content = c.message.content
      if (content.length > streamed.length && content.startsWith(streamed)) chunk({ content: content.slice(streamed.length) }, null)
      if (c.message.toolCalls.length > 0) {
        chunk({
          tool_calls: c.message.toolCalls.map((t, index) => ({ index, id: t.id, type: "function", function: { name: t.name, arguments: t.arguments } })),
        }, null)
      }
      chunk({}, c.finishReason, { usage: usageOf(c), turnwise: turnwiseField(c) })
      res.end("data: [DONE]\n\n")
    } catch (error) {
      if (!started) throw error
      const e = error instanceof ServeRequestError
        ? error
        : new ServeRequestError({ status: 500, type: "server_error", param: null, code: "stream_failed", message: String(error) })
      res.end(`data: ${JSON.stringify(errorBody(e))}\n\n`)
    }
  }

  const rewardBody = (raw: unknown): number | ReadonlyArray<number> => {
    const value = typeof raw === "object" && raw !== null && !Array.isArray(raw) ? (raw as { reward?: unknown }).reward : raw
    if (typeof value === "number") return value
    if (Array.isArray(value) && value.every((v): v is number => typeof v === "number")) return value
    throw invalidRequest("invalid_reward", "expected {\"reward\": number} or {\"reward\": [number, ...]} (one per turn)", "reward")
  }

  const route = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (options.apiKey !== "" && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      throw new ServeRequestError({ status: 401, type: "authentication_error", param: null, code: "invalid_api_key", message: "incorrect API key provided" })
    }
    const url = new URL(req.url ?? "/", "http://localhost")
    const path = url.pathname.replace(/\/+$/, "")
    const episode = /^\/v1\/episodes\/([^/]+)(\/reward)?$/.exec(path)
    if (req.method === "POST" && path === "/v1/chat/completions") return chat(req, res)
    if (req.method === "GET" && path === "/v1/models") {
      return send(res, 200, {
        object: "list",
        data: [{ id: served.modelName, object: "model", created: 0, owned_by: "turnwise", policy_version: served.policyVersion() }],
      })
    }
    if (req.method === "POST" && path === "/v1/train") {
      const result = await run(served.train())
      return send(res, 200, {
        policy_version: result.policyVersion,
        episodes: result.episodes,
        groups: result.groups,
        skipped: result.skipped,
        metrics: result.metrics,
      })
    }
    if (episode !== null && req.method === "POST" && episode[2] !== undefined) {
      const id = decodeURIComponent(episode[1]!)
      const reward = rewardBody(parseJson(await readBody(req, options.maxBodyBytes)))
      const result = await run(served.reward(id, reward))
      return send(res, 200, { episode: id, reward, policy_version: served.policyVersion(), trained: result.trained })
    }
    if (episode !== null && req.method === "GET" && episode[2] === undefined) return send(res, 200, await run(served.episode(decodeURIComponent(episode[1]!))))
    throw new ServeRequestError({
      status: 404,
      type: "not_found_error",
      param: null,
      code: "unknown_route",
      message: `no route ${req.method ?? "?"} ${url.pathname}`,
    })
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      const e = error instanceof ServeRequestError
        ? error
        : new ServeRequestError({
          status: 500,
          type: "server_error",
          param: null,
          code: "internal_error",
          message: error instanceof Error ? error.message : String(error),
        })
      if (res.headersSent) res.end()
      else send(res, e.status, errorBody(e))
    })
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port, options.host, () => {
      const port = (server.address() as AddressInfo).port
      const host = options.host.includes(":") ? `[${options.host}]` : options.host
      resolve({
        url: `http://${host}:${port}/v1`,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections()
            server.close(() => done())
          }),
      })
    })
  })
}
