import { describe, expect, it } from "vitest"
import { canonicalAnswer, checkAnswer, extractFinalAnswer, parseNumber } from "../../packages/tasks/src/answers.js"

describe("checkAnswer", () => {
  const same: ReadonlyArray<readonly [string, string]> = [
    ["1,000", "1000"],
    ["1,234,567", "1234567"],
    ["1_000", "1000"],
    ["+5", "5"],
    ["007", "7"],
    ["-0", "0"],
    ["0.5", "1/2"],
    ["6/8", "3/4"],
    ["0.75", "6/8"],
    ["-1/2", "-0.5"],
    ["3 / 4", "0.75"],
    ["2.", "2"],
    [".5", "0.5"],
    ["1e3", "1000"],
    ["1.5e-7", "0.00000015"],
    ["1e+21", "1000000000000000000000"],
    ["0.3333333333333333", "1/3"], // how a tool prints 1/3
    ["1.0000000001", "1"], // relative error 1e-10, inside the 1e-9 tolerance
    ["#### 42", "42"],
    ["42", "#### 42"],
    ["$18", "18"],
    [" 42 ", "42"],
    ["12345678901234567890123", "12345678901234567890123"],
    ["Paris", " paris "],
  ]
  it.each(same)("%j matches %j", (given, expected) => {
    expect(checkAnswer(given, expected)).toBe(true)
  })

  const different: ReadonlyArray<readonly [string, string]> = [
    ["-3", "3"],
    ["", ""],
    ["", "0"],
    ["0", ""],
    ["   ", "0"],
    ["9007199254740993", "9007199254740992"], // integers compare exactly, beyond 2^53 too
    ["1/3", "0.333"],
    ["1.00001", "1"],
    ["1e-10", "0"],
    ["1,00", "100"], // bad thousands grouping is not a number
    ["1/0", "0"],
    ["42", "4.2"],
    ["abc", "42"],
    ["42", "forty-two"],
    ["1e999999", "1"], // absurd exponent is rejected, not expanded
    ["0.5", "1/3"],
    ["1/2", "2"],
  ]
  it.each(different)("%j does not match %j", (given, expected) => {
    expect(checkAnswer(given, expected)).toBe(false)
  })
})

describe("parseNumber", () => {
  it("reads exact rationals and marks decimals as inexact", () => {
    expect(parseNumber("-1,250")).toEqual({ num: -1250n, den: 1n, inexact: false })
    expect(parseNumber("6/8")).toEqual({ num: 6n, den: 8n, inexact: false })
    expect(parseNumber("2.50")).toEqual({ num: 250n, den: 100n, inexact: true })
    expect(parseNumber("1.5e2")).toEqual({ num: 1500n, den: 10n, inexact: true })
    expect(parseNumber("2e-3")).toEqual({ num: 2n, den: 1000n, inexact: true })
  })
  it("rejects what is not a number", () => {
    for (const s of ["", ".", "e5", "1.2.3", "1/2/3", "12abc", "--3", "1/0", "0x10", "1,2345"]) expect(parseNumber(s)).toBeNull()
  })
})

describe("canonicalAnswer", () => {
  it.each([
    ["#### 1,000", "1000"],
    ["007", "7"],
    ["-0", "0"],
    ["6/8", "0.75"],
    ["2/6", "1/3"],
    ["-4/2", "-2"],
    ["-1/8", "-0.125"],
    ["1e3", "1000"],
    ["0.50", "0.5"],
    ["1.5e-7", "0.00000015"],
    ["  Paris ", "Paris"],
  ])("%j -> %j", (x, want) => {
    expect(canonicalAnswer(x)).toBe(want)
  })
  it("accepts numbers and bigints", () => {
    expect(canonicalAnswer(-0.5)).toBe("-0.5")
    expect(canonicalAnswer(467649)).toBe("467649")
    expect(canonicalAnswer(12345678901234567890n)).toBe("12345678901234567890")
  })
  it("is idempotent and agrees with checkAnswer", () => {
    for (const x of ["1,000", "6/8", "2/6", "-0.125", "1e3", "3.14159"]) {
      const c = canonicalAnswer(x)
      expect(canonicalAnswer(c)).toBe(c)
      expect(checkAnswer(c, x)).toBe(true)
    }
  })
})

describe("extractFinalAnswer", () => {
  it("takes the last closed <answer> tag", () => {
    expect(extractFinalAnswer("<code>2+2</code>\n<output>4</output>\n<answer>4</answer>")).toBe("4")
    expect(extractFinalAnswer("<answer>3</answer> no, <answer> 5 </answer>")).toBe("5")
  })
  it("falls back to GSM8K's #### line", () => {
    expect(extractFinalAnswer("She sold 48/2 = 24 clips.\n#### 72")).toBe("72")
    expect(extractFinalAnswer("#### 1,000\nthanks")).toBe("1,000")
  })
  it("returns null when there is no final answer", () => {
    expect(extractFinalAnswer("<code>2+2</code>\n<output>4</output>\n")).toBeNull()
    expect(extractFinalAnswer("<answer>4")).toBeNull() // unterminated
    expect(extractFinalAnswer("####   ")).toBeNull()
  })
})
