import { InvalidArgumentError } from "commander";
import { CACHE_TYPES } from "../bench/sweep.js";
import { GPU_CHOICES, normaliseGpu, type GpuName } from "../config/rules.js";

/** Option value parsers: each throws InvalidArgumentError, which commander reports as a usage error. */

export function parseInteger(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    if (!/^-?\d+$/.test(raw.trim())) throw new InvalidArgumentError(`expected a whole number, got "${raw}"`);
    const value = Number(raw);
    if (value < min || value > max) throw new InvalidArgumentError(`must be between ${min} and ${max}, got ${value}`);
    return value;
  };
}

export function parseNumber(min: number, max = Number.POSITIVE_INFINITY) {
  return (raw: string): number => {
    const value = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(value)) throw new InvalidArgumentError(`expected a number, got "${raw}"`);
    if (value < min || value > max) {
      throw new InvalidArgumentError(`must be between ${min} and ${max === Number.POSITIVE_INFINITY ? "∞" : max}, got ${value}`);
    }
    return value;
  };
}

export function parseGpuLayers(raw: string): number | "max" | "auto" {
  // llama.cpp's -ngl -1 (as llama-bench's) means every layer.
  if (raw === "max" || raw === "auto" || raw.trim() === "-1") return raw.trim() === "-1" ? "max" : (raw as "max" | "auto");
  return parseInteger(0, 100000)(raw);
}

/** Tokens to generate; llama.cpp's -1 is no limit (until the end of the text or Ctrl-C), kept as -1. */
export function parseMaxTokens(raw: string): number {
  if (raw.trim() === "-1") return -1;
  return parseInteger(1, 10_000_000)(raw);
}

/** A sampling seed; llama.cpp's -1 is a random one, kept as -1 (see givenSeed). */
export function parseSeed(raw: string): number {
  if (raw.trim() === "-1") return -1;
  return parseInteger(0, 4294967295)(raw);
}

/** One KV cache type (llama.cpp's -ctk/-ctv). */
export function parseCacheType(raw: string): string {
  const value = raw.trim().toLowerCase();
  if (!(CACHE_TYPES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${CACHE_TYPES.join(", ")}, got "${raw}"`);
  return value;
}

export function parseGpu(raw: string): GpuName {
  const value = normaliseGpu(raw);
  if (value === undefined) throw new InvalidArgumentError(`expected one of ${GPU_CHOICES.join(", ")}, got "${raw}"`);
  return value;
}

/** Sizes such as 512MB, 2GiB, 1.5G or plain bytes. */
export function parseBytes(raw: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$/i.exec(raw);
  if (!match) throw new InvalidArgumentError(`expected a size such as 512MB or 8GB, got "${raw}"`);
  const value = Number(match[1]);
  const unit = (match[2] ?? "").toLowerCase();
  const binary = unit.includes("i");
  const base = binary ? 1024 : 1000;
  const power = { "": 0, b: 0, k: 1, m: 2, g: 3, t: 4 }[unit.replace(/i?b?$/, "") || ""] ?? 0;
  return Math.round(value * base ** power);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
