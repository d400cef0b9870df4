/**
 * Tool calls in the policy's text: find the code of a turn, judge malformed calls,
 * extract the final answer, and render the sandbox's observation back into text.
 *
 * The default grammar: the policy writes `<code>4821*97</code>` (in the task's default
 * language) or a fenced block with a language tag (```` ```python ````), the tool
 * feedback comes back as `<output>467637</output>`, and the final answer as
 * `<answer>467637</answer>`. Fences without a language tag are prose, not calls.
 * Pure functions; core never imports the sandbox, so the observation is described by
 * a minimal structural type.
 *
 * @category combinators
 */
import type { MalformedReason, ToolCall } from "./model.js"

/** Options of {@link parseToolCall}. */
export interface ParseToolCallOptions {
  /** Language of a `<code>` block without a `lang` attribute (default "js"). */
  readonly language?: string
  /** Accept several blocks in one turn (their code is joined by newlines); default false. */
  readonly allowMultiple?: boolean
  /** Languages a fenced block may name (default ["js", "python"]); aliases such as "javascript" and "py" map to them. */
  readonly languages?: ReadonlyArray<string>
}

/** The outcome of parsing one turn: a usable call, a malformed one, or no call at all (both null). */
export interface ParsedToolCall {
  readonly call: ToolCall | null
  readonly malformed: MalformedReason | null
}

const aliases: Readonly<Record<string, string>> = {
  javascript: "js",
  js: "js",
  node: "js",
  mjs: "js",
  python: "python",
  python3: "python",
  py: "python",
}

const canonical = (tag: string): string => aliases[tag.toLowerCase()] ?? tag.toLowerCase()

interface Block {
  readonly start: number
  readonly language: string
  /** null when the block never closes. */
  readonly code: string | null
}

/** Remove blank edge lines and the indentation every line shares (Python cares). */
const dedent = (code: string): string => {
  const lines = code.replace(/\r\n/g, "\n").split("\n")
  while (lines.length > 0 && lines[0]!.trim() === "") lines.shift()
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === "") lines.pop()
  const indents = lines.filter((l) => l.trim() !== "").map((l) => /^[ \t]*/.exec(l)![0].length)
  const common = indents.length === 0 ? 0 : Math.min(...indents)
  return lines.map((l) => l.slice(common)).join("\n").trimEnd()
}

const fencePattern = /```[ \t]*([A-Za-z0-9_+-]+)[ \t]*\n/g

/** Fenced blocks with a known language tag in `text` (offset by `base`). */
const fences = (text: string, base: number, known: ReadonlySet<string>): Array<Block> => {
  const blocks: Array<Block> = []
  fencePattern.lastIndex = 0
  for (let m = fencePattern.exec(text); m !== null; m = fencePattern.exec(text)) {
    const language = canonical(m[1]!)
    const bodyStart = m.index + m[0].length
    const close = text.indexOf("```", bodyStart)
    if (known.has(language)) blocks.push({ start: base + m.index, language, code: close < 0 ? null : text.slice(bodyStart, close) })
    if (close < 0) break
    fencePattern.lastIndex = close + 3
  }
  return blocks
}

/**
 * Extract the tool call of one turn.
 *
 * @example
 * parseToolCall("Let me compute. <code>4821*97</code>", { language: "js" })
 * // { call: { language: "js", code: "4821*97" }, malformed: null }
 * parseToolCall("<code>print(1)", { language: "python" }) // { call: null, malformed: "unterminated" }
 */
export const parseToolCall = (text: string, options: ParseToolCallOptions = {}): ParsedToolCall => {
  const fallback = canonical(options.language ?? "js")
  const known = new Set((options.languages ?? ["js", "python"]).map(canonical))
  known.add(fallback)
  const blocks: Array<Block> = []
  const open = /<code(?:\s+lang(?:uage)?\s*=\s*["']?([A-Za-z0-9_+-]+)["']?)?\s*>/g
  let cursor = 0
  let outside = ""
  for (let m = open.exec(text); m !== null; m = open.exec(text)) {
    outside += text.slice(cursor, m.index)
    const bodyStart = m.index + m[0].length
    const close = text.indexOf("</code>", bodyStart)
    const language = m[1] === undefined ? fallback : canonical(m[1])
    if (close < 0) {
      blocks.push({ start: m.index, language, code: null })
      cursor = text.length
      break
    }
    // A fence inside the tags names the language: <code>```python\n...\n```</code>.
    const body = text.slice(bodyStart, close)
    const inner = fences(body, m.index, known)
    const only = inner[0]
    if (inner.length === 1 && only !== undefined && body.trim().startsWith("```") && body.trim().endsWith("```")) {
      blocks.push({ start: m.index, language: only.language, code: only.code })
    } else {
      blocks.push({ start: m.index, language, code: body })
    }
    cursor = close + "</code>".length
    open.lastIndex = cursor
  }
  outside += text.slice(cursor)
  // Fences outside <code> tags (offsets only order the blocks, so outside-text positions suffice).
  blocks.push(...fences(outside, text.length, known))

  if (blocks.length === 0) return { call: null, malformed: null }
  if (blocks.some((b) => b.code === null)) return { call: null, malformed: "unterminated" }
  if (blocks.length > 1 && options.allowMultiple !== true) return { call: null, malformed: "multiple-blocks" }
  const ordered = [...blocks].sort((a, b) => a.start - b.start)
  const first = ordered[0]!
  const code = ordered
    .filter((b) => b.language === first.language)
    .map((b) => dedent(b.code ?? ""))
    .filter((c) => c !== "")
    .join("\n")
  if (code === "") return { call: null, malformed: "empty" }
  return { call: { language: first.language, code }, malformed: null }
}

/**
 * The final answer of a turn (`<answer>...</answer>`, trimmed), or null when there is
 * no complete answer block.
 *
 * @example
 * parseAnswer("So the total is <answer> 467637 </answer>") // "467637"
 */
export const parseAnswer = (text: string): string | null => {
  const m = /<answer>([\s\S]*?)<\/answer>/.exec(text)
  return m === null ? null : m[1]!.trim()
}

/** What {@link renderObservation} needs of a sandbox observation. */
export interface ObservationLike {
  readonly ok: boolean
  readonly stdout: string
  readonly value?: string
  readonly error?: string
  readonly kind?: "timeout" | "memory" | "crash" | "error"
}

const prefixes: Readonly<Record<NonNullable<ObservationLike["kind"]>, string>> = {
  error: "Error",
  timeout: "Timeout",
  memory: "Memory limit exceeded",
  crash: "Crash",
}

/**
 * Cap `text` at `maxChars`, keeping its head and tail (a traceback's last line
 * matters) around a marker that says how many characters were dropped. A cap shorter
 * than the marker yields the marker alone.
 *
 * @example
 * capMiddle("x".repeat(100), 40) // "xxxxxxxxx…[truncated 82 chars]…xxxxxxxxx" (40 chars)
 */
export const capMiddle = (text: string, maxChars: number): string => {
  if (text.length <= maxChars) return text
  const markerFor = (dropped: number): string => `…[truncated ${dropped} chars]…`
  // The marker's length depends on the dropped count; settle it (at most a few rounds).
  let keep = Math.max(0, maxChars - markerFor(text.length).length)
  for (let round = 0; round < 4; round++) {
    const next = Math.max(0, maxChars - markerFor(text.length - keep).length)
    if (next === keep) break
    keep = next
  }
  const head = Math.ceil(keep / 2)
  const tail = keep - head
  return text.slice(0, head) + markerFor(text.length - keep) + (tail > 0 ? text.slice(text.length - tail) : "")
}

/**
 * Render an observation as the tool feedback of the next turn.
 *
 * @example
 * renderObservation({ ok: true, stdout: "", value: "467637" }, { maxChars: 512 }) // "<output>467637</output>"
 * renderObservation({ ok: false, kind: "timeout", error: "execution exceeded the 5000 ms deadline", stdout: "" }, { maxChars: 512 })
 * // "<output>Timeout: execution exceeded the 5000 ms deadline</output>"
 */
export const renderObservation = (observation: ObservationLike, options: { readonly maxChars: number }): string => {
  const stdout = observation.stdout.replace(/\n+$/, "")
  const parts: Array<string> = stdout === "" ? [] : [stdout]
  if (observation.ok) {
    if (observation.value !== undefined) parts.push(observation.value)
  } else {
    parts.push(`${prefixes[observation.kind ?? "error"]}: ${observation.error ?? "unknown failure"}`)
  }
  return `<output>${capMiddle(parts.join("\n"), Math.max(0, options.maxChars))}</output>`
}
