import { afterAll, describe, expect, it } from "vitest"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runInNewContext } from "node:vm"
import { DatasetError, loadJsonlProblems, parseJsonlProblems } from "../../packages/tasks/src/jsonl.js"
import { makeDemonstration } from "../../packages/tasks/src/demonstrations.js"

const dir = mkdtempSync(join(tmpdir(), "turnwise-jsonl-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const write = (name: string, lines: ReadonlyArray<string>, eol = "\n"): string => {
  const path = join(dir, name)
  writeFileSync(path, lines.join(eol))
  return path
}

// A GSM8K-style row (made up here): a worked solution with calculator annotations, then "#### n".
const gsmRow = JSON.stringify({
  question: "Tom has 3 bags with 12 marbles each. He gives away 7. How many marbles are left?",
  answer: "Tom has 3*12 = <<3*12=36>>36 marbles.\nAfter giving 7 away he has 36-7 = <<36-7=29>>29.\n#### 29",
})

describe("loadJsonlProblems: good files", () => {
  it("loads a file with GSM8K, plain and numeric answers, skipping blank lines", () => {
    const path = write(
      "toy.jsonl",
      [
        gsmRow,
        "",
        JSON.stringify({ question: "What is 1/4 + 1/4?", answer: "2/4", source: "hand", level: 2, checked: true, meta: { a: 1 } }),
        "   ",
        JSON.stringify({ question: "How many grams in 1.5 kg?", answer: 1500, difficulty: 3 }),
        JSON.stringify({ question: "Big?", answer: "#### 1,000,000" }),
        "",
      ],
      "\r\n",
    )
    const ps = loadJsonlProblems(path)
    expect(ps.map((p) => p.id)).toEqual(["toy-1", "toy-3", "toy-5", "toy-6"])
    expect(ps.map((p) => p.answer)).toEqual(["29", "0.5", "1500", "1000000"])
    expect(ps.map((p) => p.family)).toEqual(["toy", "toy", "toy", "toy"])
    expect(ps.map((p) => p.difficulty)).toEqual([0, 0, 3, 0])
    expect(ps[0]?.steps).toEqual(["3*12", "36-7"])
    expect(ps[1]?.steps).toBeUndefined()
    // Simple extra fields are kept; the nested one is dropped.
    expect(ps[1]?.tags).toEqual({ source: "hand", level: 2, checked: true })
    expect(ps[2]?.tags).toEqual({ difficulty: 3 })
  })

  it("takes the name from options, and reads inline text", () => {
    const ps = loadJsonlProblems({ text: `${gsmRow}\n` }, { name: "gsm", difficulty: 2 })
    expect(ps).toEqual([
      {
        id: "gsm-1",
        question: "Tom has 3 bags with 12 marbles each. He gives away 7. How many marbles are left?",
        answer: "29",
        difficulty: 2,
        family: "gsm",
        tags: {},
        steps: ["3*12", "36-7"],
      },
    ])
  })

  it("keeps no steps when the annotations do not end at the answer or are not plain arithmetic", () => {
    const rows = [
      JSON.stringify({ question: "q1", answer: "<<3*12=36>>36 then half is 18.\n#### 18" }),
      JSON.stringify({ question: "q2", answer: "<<sqrt(16)=4>>4 and <<4*2=8>>8\n#### 8" }),
    ]
    expect(parseJsonlProblems(rows.join("\n")).map((p) => p.steps)).toEqual([undefined, undefined])
  })

  it("turns GSM8K annotations into a working multi-turn demonstration", async () => {
    const [p] = parseJsonlProblems(gsmRow, { name: "gsm" })
    if (p === undefined) throw new Error("no problem")
    const demo = await makeDemonstration(p, { runTool: (code) => String(runInNewContext(code)) })
    expect(demo.turns.map((t) => t.policyText)).toEqual(["<code>3*12</code>", "<code>36-7</code>", "<answer>29</answer>"])
  })
})

describe("loadJsonlProblems: bad lines", () => {
  const good = JSON.stringify({ question: "2+2?", answer: "4" })
  const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
    ["invalid JSON", "{\"question\": \"2+2?\", \"answer\": \"4\"", /invalid JSON/],
    ["not an object", "[1, 2]", /expected a JSON object, got array/],
    ["null line", "null", /expected a JSON object, got null/],
    ["missing question", JSON.stringify({ answer: "4" }), /missing field "question"/],
    ["missing answer", JSON.stringify({ question: "2+2?" }), /missing field "answer"/],
    ["question of wrong type", JSON.stringify({ question: 22, answer: "4" }), /"question" must be a string, got number/],
    ["answer of wrong type", JSON.stringify({ question: "2+2?", answer: true }), /"answer" must be a string or a number, got boolean/],
    ["answer that is an object", JSON.stringify({ question: "2+2?", answer: { n: 4 } }), /got object/],
    ["empty answer", JSON.stringify({ question: "2+2?", answer: "  " }), /"answer" is empty/],
    ["empty question", JSON.stringify({ question: "", answer: "4" }), /"question" is empty/],
    ["#### without a number", JSON.stringify({ question: "2+2?", answer: "so four\n#### four" }), /after "####" is not a number: "four"/],
  ]
  it.each(cases)("reports %s with the file and its 1-based line number", (_, bad, problem) => {
    // The bad line is line 4: a good line, a blank line, a good line, then the bad one.
    const path = write("bad.jsonl", [good, "", good, bad, good])
    let caught: unknown
    try {
      loadJsonlProblems(path)
    } catch (e) {
      caught = e
    }
    expect(caught).toBeInstanceOf(DatasetError)
    if (!(caught instanceof DatasetError)) return
    expect(caught._tag).toBe("DatasetError")
    expect(caught.file).toBe(path)
    expect(caught.line).toBe(4)
    expect(caught.problem).toMatch(problem)
    expect(caught.message).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:4: `))
  })

  it("names the data set in errors for inline text", () => {
    expect(() => parseJsonlProblems(`${good}\n{oops`, { name: "mine" })).toThrow(/^mine:2: invalid JSON/)
  })

  it("reports a missing file and an empty data set without a line number", () => {
    const missing = join(dir, "nope.jsonl")
    expect(() => loadJsonlProblems(missing)).toThrow(DatasetError)
    expect(() => loadJsonlProblems(missing)).toThrow(/nope\.jsonl: cannot read the file/)
    expect(() => loadJsonlProblems(write("empty.jsonl", ["", "  "]))).toThrow(/empty\.jsonl: contains no problems/)
  })
})
