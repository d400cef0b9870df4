/**
 * How a conversation becomes the text a policy reads and writes.
 *
 * A {@link ChatFormat} renders messages (and the tools on offer) up to an opened
 * assistant turn, renders what follows a recorded assistant turn (the turn's closing
 * and the next messages: the observation of a multi-turn episode), names the strings
 * that end a turn, and splits a sampled turn into content and tool calls.
 *
 * The built-in byte-level models use {@link byteChatFormat}, which extends the
 * built-in tool protocol (`<output>…</output>` observations) to named functions:
 *
 *   <|tools|>{"name":"add","description":"…","parameters":{…}}<|end|>\n
 *   <|system|>Be brief.<|end|>\n
 *   <|user|>What is 2+3?<|end|>\n
 *   <|assistant|>Let me add. <call name="add">{"a":2,"b":3}</call><|end|>\n
 *   <|tool|><output>5</output><|end|>\n
 *   <|assistant|>5<|end|>\n
 *
 * The model writes after `<|assistant|>`; its turn ends at `<|end|>`, at `</call>` (one
 * call per turn) or at its end-of-sequence token. The part of the closing `<|end|>\n`
 * the model did not write itself is context, like the messages after it.
 *
 * A Hugging Face model with a chat template uses {@link templateChatFormat}: the
 * template renders the messages (tools passed as its `tools` variable, tool calls in
 * the Hermes form `<tool_call>{"name":…,"arguments":…}</tool_call>` that Qwen2.5 and
 * others were tuned on), and the observation after a turn is the difference between
 * two renders of the conversation.
 *
 * @category models
 */
import type { MalformedReason } from "@turnwise/core"
import type { ChatMessage, ChatTool } from "./request.js"

/** A sampled turn split into what the client sees. */
export interface ParsedReply {
  /** The text before any tool call, without the turn's closing marker. */
  readonly content: string
  /** Well-formed calls of known tools (ids are added by the caller). */
  readonly calls: ReadonlyArray<{ readonly name: string; readonly arguments: string }>
  /** Set when the turn tried a call that cannot be used (then `content` is the whole text). */
  readonly malformed: MalformedReason | null
}

/** The recorded assistant turn a continuation follows. */
export interface TurnToContinue {
  /** The messages the turn answered. */
  readonly messages: ReadonlyArray<ChatMessage>
  /** The reply the client was sent (what it echoes back). */
  readonly reply: ChatMessage
  /** The sampled text. */
  readonly text: string
  /** The turn ended with the model's end-of-sequence token. */
  readonly endedByEos: boolean
}

/** A conversation renderer for one model family. See the module header. */
export interface ChatFormat {
  readonly name: string
  /** Strings that end an assistant turn (kept in the recorded tokens). */
  readonly stops: ReadonlyArray<string>
  /** Strings that begin the non-content part of a turn (streaming holds them back). */
  readonly markers: ReadonlyArray<string>
  /** The conversation up to an opened assistant turn. */
  readonly prompt: (messages: ReadonlyArray<ChatMessage>, tools: ReadonlyArray<ChatTool>) => string
  /**
   * The text after a recorded turn up to the next opened assistant turn, given the
   * messages that follow the turn's reply; null when the format cannot tell (the
   * caller then records a new branch).
   */
  readonly continuation: (turn: TurnToContinue, next: ReadonlyArray<ChatMessage>, tools: ReadonlyArray<ChatTool>) => string | null
  /** Split a sampled turn into content and calls; calls are parsed only when `tools` is non-empty. */
  readonly parse: (text: string, tools: ReadonlyArray<ChatTool>) => ParsedReply
}

const endMarker = "<|end|>"

const renderByteMessage = (m: ChatMessage): string => {
  switch (m.role) {
    case "system":
      return `<|system|>${m.content}${endMarker}\n`
    case "user":
      return `<|user|>${m.content}${endMarker}\n`
    case "assistant":
      return `<|assistant|>${m.content}${m.toolCalls.map((c) => `<call name="${c.name}">${c.arguments}</call>`).join("")}${endMarker}\n`
    case "tool":
      return `<|tool|><output>${m.content}</output>${endMarker}\n`
  }
}

const toolsBlock = (tools: ReadonlyArray<ChatTool>): string =>
  tools.length === 0
    ? ""
    : `<|tools|>${tools.map((t) => JSON.stringify({ name: t.name, description: t.description, parameters: t.parameters })).join("\n")}${endMarker}\n`

const isJsonObject = (text: string): boolean => {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null && !Array.isArray(value)
  } catch {
    return false
  }
}

/** Parse calls written as `open…close` blocks whose body `read` turns into a call (null: malformed). */
const parseCalls = (
  text: string,
  tools: ReadonlyArray<ChatTool>,
  open: string,
  pattern: RegExp,
  read: (match: RegExpExecArray) => { readonly name: string; readonly arguments: string } | null,
): ParsedReply => {
  const start = text.indexOf(open)
  if (tools.length === 0 || start < 0) return { content: text, calls: [], malformed: null }
  const calls: Array<{ name: string; arguments: string }> = []
  let end = start
  pattern.lastIndex = start
  for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
    const call = read(m)
    if (call === null || !tools.some((t) => t.name === call.name)) return { content: text, calls: [], malformed: "syntax-error" }
    calls.push(call)
    end = m.index + m[0].length
  }
  if (calls.length === 0 || text.indexOf(open, end) >= 0) return { content: text, calls: [], malformed: "unterminated" }
  return { content: text.slice(0, start), calls, malformed: null }
}

/**
 * The built-in models' chat format (see the module header).
 *
 * @example
 * byteChatFormat.prompt([{ role: "user", content: "hi", toolCalls: [], toolCallId: null }], []) // "<|user|>hi<|end|>\n<|assistant|>"
 */
export const byteChatFormat: ChatFormat = {
  name: "turnwise-byte",
  stops: [endMarker, "</call>"],
  markers: [endMarker, "<call"],
  prompt: (messages, tools) => toolsBlock(tools) + messages.map(renderByteMessage).join("") + "<|assistant|>",
  continuation: (turn, next) => (turn.text.endsWith(endMarker) ? "\n" : `${endMarker}\n`) + next.map(renderByteMessage).join("") + "<|assistant|>",
  parse: (raw, tools) => {
    const text = raw.endsWith(endMarker) ? raw.slice(0, -endMarker.length) : raw
    return parseCalls(text, tools, "<call", /<call name="([^"]*)">([\s\S]*?)<\/call>/g, (m) => (isJsonObject(m[2]!) ? { name: m[1]!, arguments: m[2]! } : null))
  },
}

/** What {@link templateChatFormat} needs of a tokenizer with a chat template. */
export interface TemplateRenderer {
  readonly applyChatTemplate: (
    messages: ReadonlyArray<{ readonly role: string; readonly content: string }>,
    options?: { readonly addGenerationPrompt?: boolean; readonly extra?: Readonly<Record<string, unknown>> },
  ) => string
  /** The BOS token's text (a leading one is dropped: BOS is prepended as an id). */
  readonly bosToken: string | null
}

/**
 * A Hugging Face chat template as a chat format. `eosToken` is the text of the
 * token that ends an assistant turn (`<|im_end|>` for Qwen2).
 *
 * @example
 * const format = templateChatFormat(hfTokenizer, "<|im_end|>")
 */
export const templateChatFormat = (renderer: TemplateRenderer, eosToken: string): ChatFormat => {
  const hermes = (m: ChatMessage) => ({
    role: m.role,
    content: m.content +
      m.toolCalls.map((c) =>
        `${m.content === "" ? "" : "\n"}<tool_call>\n${JSON.stringify({ name: c.name, arguments: JSON.parse(c.arguments) as unknown })}\n</tool_call>`
      ).join(""),
  })
  const render = (messages: ReadonlyArray<ChatMessage>, tools: ReadonlyArray<ChatTool>, open: boolean): string => {
    const extra = tools.length === 0
      ? {}
      : { tools: tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.parameters } })) }
    const text = renderer.applyChatTemplate(messages.map(hermes), { addGenerationPrompt: open, extra })
    return renderer.bosToken !== null && text.startsWith(renderer.bosToken) ? text.slice(renderer.bosToken.length) : text
  }
  return {
    name: "chat-template",
    stops: ["</tool_call>"],
    markers: ["<tool_call>"],
    prompt: (messages, tools) => render(messages, tools, true),
    continuation: (turn, next, tools) => {
      const before = render(turn.messages, tools, true)
      const withReply = render([...turn.messages, turn.reply], tools, false)
      const after = render([...turn.messages, turn.reply, ...next], tools, true)
      if (!withReply.startsWith(before) || !after.startsWith(withReply)) return null
      // The template's closing of the reply, less what the model wrote itself (its EOS).
      const replyText = withReply.slice(before.length)
      const eosAt = replyText.lastIndexOf(eosToken)
      const closing = eosAt < 0 ? "" : turn.endedByEos ? replyText.slice(eosAt + eosToken.length) : replyText.slice(eosAt)
      return closing + after.slice(withReply.length)
    },
    parse: (text, tools) =>
      parseCalls(text, tools, "<tool_call>", /<tool_call>([\s\S]*?)<\/tool_call>/g, (m) => {
        try {
          const value = JSON.parse(m[1]!) as { name?: unknown; arguments?: unknown }
          if (typeof value.name !== "string" || typeof value.arguments !== "object" || value.arguments === null) return null
          return { name: value.name, arguments: JSON.stringify(value.arguments) }
        } catch {
          return null
        }
      }),
  }
}

/**
 * The part of a growing turn's text that can be shown as content: up to the first
 * marker or stop string, less a tail that may be the start of one, less a trailing
 * partial character.
 *
 * @example
 * visibleContent("Sure <ca", byteChatFormat.markers, []) // "Sure "
 */
export const visibleContent = (text: string, markers: ReadonlyArray<string>, stops: ReadonlyArray<string>): string => {
  const all = [...markers, ...stops]
  let cut = text.length
  for (const m of all) {
    const at = text.indexOf(m)
    if (at >= 0 && at < cut) cut = at
  }
  let shown = text.slice(0, cut)
  if (cut === text.length) {
    let hold = 0
    for (const m of all) for (let k = Math.min(m.length - 1, shown.length); k > hold; k--) if (shown.endsWith(m.slice(0, k))) hold = k
    shown = shown.slice(0, shown.length - hold)
  }
  return shown.replace(/\uFFFD+$/, "")
}
