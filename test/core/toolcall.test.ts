import { describe, expect, it } from "vitest"
import { capMiddle, parseAnswer, parseToolCall, renderObservation } from "../../packages/core/src/toolcall.js"

describe("parseToolCall", () => {
  it("extracts a <code> block in the default language", () => {
    expect(parseToolCall("Compute it. <code>4821*97</code>", { language: "js" })).toEqual({ call: { language: "js", code: "4821*97" }, malformed: null })
    expect(parseToolCall("<code>print(1)</code>", { language: "python" }).call).toEqual({ language: "python", code: "print(1)" })
  })
  it("reads a lang attribute and a fence's language tag", () => {
    expect(parseToolCall("<code lang=\"python\">x = 1</code>", { language: "js" }).call).toEqual({ language: "python", code: "x = 1" })
    expect(parseToolCall("Here:\n```py\nprint(2)\n```\n", { language: "js" }).call).toEqual({ language: "python", code: "print(2)" })
    expect(parseToolCall("<code>```javascript\n1+1\n```</code>").call).toEqual({ language: "js", code: "1+1" })
  })
  it("dedents a block so Python indentation survives", () => {
    const text = "<code>\n    for i in range(2):\n        print(i)\n</code>"
    expect(parseToolCall(text, { language: "python" }).call?.code).toBe("for i in range(2):\n    print(i)")
  })
  it("ignores fences without a language tag and text without calls", () => {
    expect(parseToolCall("```\nnot code\n```\nThe answer is near.")).toEqual({ call: null, malformed: null })
  })
  it("reports unterminated, multiple and empty blocks", () => {
    expect(parseToolCall("<code>1+1", { language: "js" })).toEqual({ call: null, malformed: "unterminated" })
    expect(parseToolCall("```python\nprint(1)\n", {}).malformed).toBe("unterminated")
    expect(parseToolCall("<code>1</code> and <code>2</code>").malformed).toBe("multiple-blocks")
    expect(parseToolCall("<code>1</code>\n```js\n2\n```").malformed).toBe("multiple-blocks")
    expect(parseToolCall("<code>  \n </code>").malformed).toBe("empty")
  })
  it("joins several blocks when allowed", () => {
    expect(parseToolCall("<code>a=1</code><code>a+1</code>", { allowMultiple: true }).call).toEqual({ language: "js", code: "a=1\na+1" })
  })
})

describe("parseAnswer", () => {
  it("extracts the trimmed answer or null", () => {
    expect(parseAnswer("so <answer> 467637 </answer>")).toBe("467637")
    expect(parseAnswer("<answer>12")).toBeNull()
    expect(parseAnswer("no answer")).toBeNull()
  })
})

describe("renderObservation", () => {
  it("renders values, stdout and errors", () => {
    expect(renderObservation({ ok: true, stdout: "", value: "467637" }, { maxChars: 100 })).toBe("<output>467637</output>")
    expect(renderObservation({ ok: true, stdout: "hi\n" }, { maxChars: 100 })).toBe("<output>hi</output>")
    expect(renderObservation({ ok: true, stdout: "a\n", value: "3" }, { maxChars: 100 })).toBe("<output>a\n3</output>")
    expect(renderObservation({ ok: false, kind: "timeout", error: "execution exceeded the 5 ms deadline", stdout: "" }, { maxChars: 100 })).toBe(
      "<output>Timeout: execution exceeded the 5 ms deadline</output>",
    )
    expect(renderObservation({ ok: false, kind: "error", error: "ReferenceError: x", stdout: "p\n" }, { maxChars: 100 })).toBe(
      "<output>p\nError: ReferenceError: x</output>",
    )
  })
  it("caps the body, keeping head and tail", () => {
    const out = renderObservation({ ok: true, stdout: "a".repeat(50) + "b".repeat(50) }, { maxChars: 40 })
    const body = out.slice("<output>".length, -"</output>".length)
    expect(body.length).toBe(40)
    expect(body.startsWith("aaaa")).toBe(true)
    expect(body.endsWith("bbbb")).toBe(true)
    expect(body).toContain("…[truncated 82 chars]…")
    expect(capMiddle("short", 40)).toBe("short")
  })
})
