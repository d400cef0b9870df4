/**
 * The chat-completions request as the OpenAI API defines it (the parts this server
 * reads), decoded once at the edge into a normalised form: every message has text
 * content (a list of text parts is joined, null is ""), its tool calls and the id of
 * the call it answers.
 *
 * Checks that need the whole conversation are made here too: a tool message must
 * answer a call made by an earlier assistant message of the same request.
 *
 * @category models
 */
import { Schema } from "effect"
import { schemaProblem } from "@turnwise/dsl"
import { invalidRequest } from "./errors.js"

const TextPart = Schema.Struct({ type: Schema.Literal("text"), text: Schema.String })

const WireToolCall = Schema.Struct({
  id: Schema.String,
  type: Schema.optionalKey(Schema.Literal("function")),
  function: Schema.Struct({ name: Schema.String, arguments: Schema.String }),
})

const WireMessage = Schema.Struct({
  role: Schema.Literals(["system", "developer", "user", "assistant", "tool"]),
  content: Schema.optionalKey(Schema.NullOr(Schema.Union([Schema.String, Schema.Array(TextPart)]))),
  name: Schema.optionalKey(Schema.String),
  tool_calls: Schema.optionalKey(Schema.NullOr(Schema.Array(WireToolCall))),
  tool_call_id: Schema.optionalKey(Schema.String),
})

const WireTool = Schema.Struct({
  type: Schema.Literal("function"),
  function: Schema.Struct({
    name: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{1,64}$/)),
    description: Schema.optionalKey(Schema.String),
    parameters: Schema.optionalKey(Schema.Unknown),
  }),
})

/** The request body of `POST /v1/chat/completions` (fields this server ignores may be present). */
export const ChatCompletionRequest = Schema.Struct({
  model: Schema.String,
  messages: Schema.Array(WireMessage),
  tools: Schema.optionalKey(Schema.NullOr(Schema.Array(WireTool))),
  tool_choice: Schema.optionalKey(Schema.Unknown),
  stream: Schema.optionalKey(Schema.NullOr(Schema.Boolean)),
  max_tokens: Schema.optionalKey(Schema.NullOr(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))),
  max_completion_tokens: Schema.optionalKey(Schema.NullOr(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))),
  temperature: Schema.optionalKey(Schema.NullOr(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(2)))),
  top_p: Schema.optionalKey(Schema.NullOr(Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)))),
  seed: Schema.optionalKey(Schema.NullOr(Schema.Int)),
  n: Schema.optionalKey(Schema.NullOr(Schema.Literal(1))),
  stop: Schema.optionalKey(Schema.NullOr(Schema.Union([Schema.String, Schema.Array(Schema.String)]))),
  metadata: Schema.optionalKey(Schema.NullOr(Schema.Record(Schema.String, Schema.String))),
})
export type ChatCompletionRequest = typeof ChatCompletionRequest.Type

/** A tool call as the server records and returns it. */
export interface ChatToolCall {
  readonly id: string
  readonly name: string
  /** The arguments as the model wrote them (a JSON object's text). */
  readonly arguments: string
}

/** A message after decoding. */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant" | "tool"
  readonly content: string
  readonly toolCalls: ReadonlyArray<ChatToolCall>
  /** The call a tool message answers; null for other roles. */
  readonly toolCallId: string | null
}

/** A tool the model may call. */
export interface ChatTool {
  readonly name: string
  readonly description: string
  readonly parameters: unknown
}

/** A decoded request. */
export interface ChatRequest {
  readonly model: string
  readonly messages: ReadonlyArray<ChatMessage>
  readonly tools: ReadonlyArray<ChatTool>
  /** False when `tool_choice` is "none": tools are described but calls are not parsed. */
  readonly toolsEnabled: boolean
  readonly stream: boolean
  readonly maxTokens: number | null
  readonly temperature: number | null
  readonly topP: number | null
  readonly seed: number | null
  readonly stop: ReadonlyArray<string>
  readonly metadata: Readonly<Record<string, string>>
}

/** Two messages say the same (what "the agent sent back our reply" means). */
export const sameMessage = (a: ChatMessage, b: ChatMessage): boolean =>
  a.role === b.role &&
  a.content === b.content &&
  a.toolCallId === b.toolCallId &&
  a.toolCalls.length === b.toolCalls.length &&
  a.toolCalls.every((call, k) => {
    const other = b.toolCalls[k]!
    return call.id === other.id && call.name === other.name && call.arguments === other.arguments
  })

/**
 * Decode and check a request body; throws {@link ServeRequestError} (400) naming the
 * field at fault.
 *
 * @example
 * decodeChatRequest({ model: "turnwise", messages: [{ role: "user", content: "hi" }] }).messages[0].content // "hi"
 */
export const decodeChatRequest = (raw: unknown): ChatRequest => {
  let wire: ChatCompletionRequest
  try {
    wire = Schema.decodeUnknownSync(ChatCompletionRequest)(raw)
  } catch (error) {
    throw invalidRequest("invalid_request", `malformed request: ${schemaProblem(error)}`)
  }
  if (wire.messages.length === 0) throw invalidRequest("invalid_request", "messages must hold at least one message", "messages")
  const made = new Set<string>()
  const messages = wire.messages.map((m, i): ChatMessage => {
    const content = m.content === undefined || m.content === null ? "" : typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("")
    const role = m.role === "developer" ? "system" : m.role
    const toolCalls = (m.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments }))
    if (toolCalls.length > 0 && role !== "assistant") {
      throw invalidRequest("invalid_request", `a ${role} message cannot carry tool_calls`, `messages[${i}].tool_calls`)
    }
    if (role === "tool") {
      if (m.tool_call_id === undefined) throw invalidRequest("invalid_request", "a tool message needs tool_call_id", `messages[${i}].tool_call_id`)
      if (!made.has(m.tool_call_id)) {
        throw invalidRequest(
          "unknown_tool_call",
          `tool result for call "${m.tool_call_id}", which no earlier assistant message made`,
          `messages[${i}].tool_call_id`,
        )
      }
    }
    for (const c of toolCalls) made.add(c.id)
    return { role, content, toolCalls, toolCallId: role === "tool" ? (m.tool_call_id ?? null) : null }
  })
  const last = messages[messages.length - 1]!
  if (last.role === "assistant") {
    throw invalidRequest("invalid_request", "the last message is the assistant's: there is nothing to reply to", `messages[${messages.length - 1}].role`)
  }
  const tools = (wire.tools ?? []).map((t) => ({ name: t.function.name, description: t.function.description ?? "", parameters: t.function.parameters ?? {} }))
  const stop = wire.stop === undefined || wire.stop === null ? [] : typeof wire.stop === "string" ? [wire.stop] : wire.stop
  return {
    model: wire.model,
    messages,
    tools,
    toolsEnabled: wire.tool_choice !== "none",
    stream: wire.stream === true,
    maxTokens: wire.max_completion_tokens ?? wire.max_tokens ?? null,
    temperature: wire.temperature ?? null,
    topP: wire.top_p ?? null,
    seed: wire.seed ?? null,
    stop: stop.filter((s) => s !== ""),
    metadata: wire.metadata ?? {},
  }
}
