import type { SamplingOptions } from "../engine/types.js";
import { badRequest } from "./http.js";

/**
 * Typed reads of a request body's fields: a wrong type or an absurd value is a 400 that names the
 * field (`messages[2].content`), never a crash; unknown fields are ignored, as the peers do.
 */
export class Fields {
  constructor(
    private readonly body: Record<string, unknown>,
    private readonly prefix = "",
  ) {}

  has(name: string): boolean {
    return this.body[name] !== undefined && this.body[name] !== null;
  }

  raw(name: string): unknown {
    return this.body[name] ?? undefined;
  }

  path(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  string(name: string, options: { required?: boolean; maxLength?: number } = {}): string | undefined {
    const value = this.body[name];
    if (value === undefined || value === null) {
      if (options.required) throw badRequest(`"${this.path(name)}" is required`, this.path(name));
      return undefined;
    }
    if (typeof value !== "string") throw badRequest(`"${this.path(name)}" must be a string`, this.path(name));
    if (options.maxLength !== undefined && value.length > options.maxLength) {
      throw badRequest(`"${this.path(name)}" is longer than ${options.maxLength} characters`, this.path(name));
    }
    return value;
  }

  number(name: string, options: { min?: number; max?: number; integer?: boolean } = {}): number | undefined {
    const value = this.body[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value)) throw badRequest(`"${this.path(name)}" must be a number`, this.path(name));
    if (options.integer && !Number.isInteger(value)) throw badRequest(`"${this.path(name)}" must be an integer`, this.path(name));
    if (options.min !== undefined && value < options.min) throw badRequest(`"${this.path(name)}" must be at least ${options.min} (got ${value})`, this.path(name));
    if (options.max !== undefined && value > options.max) throw badRequest(`"${this.path(name)}" must be at most ${options.max} (got ${value})`, this.path(name));
    return value;
  }

  boolean(name: string): boolean | undefined {
    const value = this.body[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "boolean") throw badRequest(`"${this.path(name)}" must be true or false`, this.path(name));
    return value;
  }

  object(name: string): Fields | undefined {
    const value = this.body[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "object" || Array.isArray(value)) throw badRequest(`"${this.path(name)}" must be an object`, this.path(name));
    return new Fields(value as Record<string, unknown>, this.path(name));
  }

  array(name: string, options: { required?: boolean; maxItems?: number } = {}): unknown[] | undefined {
    const value = this.body[name];
    if (value === undefined || value === null) {
      if (options.required) throw badRequest(`"${this.path(name)}" is required`, this.path(name));
      return undefined;
    }
    if (!Array.isArray(value)) throw badRequest(`"${this.path(name)}" must be an array`, this.path(name));
    if (options.maxItems !== undefined && value.length > options.maxItems) {
      throw badRequest(`"${this.path(name)}" has more than ${options.maxItems} items`, this.path(name));
    }
    return value;
  }

  /** A string or an array of strings (stop), as an array. */
  strings(name: string, options: { maxItems?: number } = {}): string[] | undefined {
    const value = this.body[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value === "string") return value === "" ? [] : [value];
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
      if (options.maxItems !== undefined && value.length > options.maxItems) {
        throw badRequest(`"${this.path(name)}" has more than ${options.maxItems} items`, this.path(name));
      }
      return (value as string[]).filter((s) => s !== "");
    }
    throw badRequest(`"${this.path(name)}" must be a string or an array of strings`, this.path(name));
  }

  /** An array item as Fields (an object is required). */
  item(name: string, items: unknown[], index: number): Fields {
    const value = items[index];
    const at = `${this.path(name)}[${index}]`;
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw badRequest(`"${at}" must be an object`, at);
    return new Fields(value as Record<string, unknown>, at);
  }
}

/**
 * The sampling fields both APIs name alike (OpenAI's body, ollama's `options`); unset ones stay
 * undefined and take the server's defaults. Only temperature's range differs (OpenAI: up to 2).
 */
export function readSampling(f: Fields, maxTemperature: number): Partial<SamplingOptions> {
  return {
    temperature: f.number("temperature", { min: 0, max: maxTemperature }),
    // llama.cpp: top_k <= 0 disables it (ollama and llama-server clients send -1).
    topK: atLeastZero(f.number("top_k", { integer: true, min: -1, max: 1_000_000 })),
    topP: f.number("top_p", { min: 0, max: 1 }),
    minP: f.number("min_p", { min: 0, max: 1 }),
    repeatPenalty: f.number("repeat_penalty", { min: 0, max: 10 }),
    // -1 is llama.cpp's and ollama's "random", which unset means here.
    seed: randomIfMinusOne(f.number("seed", { integer: true, min: -1, max: 2 ** 32 - 1 })),
    presencePenalty: f.number("presence_penalty", { min: -2, max: 2 }),
    frequencyPenalty: f.number("frequency_penalty", { min: -2, max: 2 }),
  };
}

function atLeastZero(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Math.max(0, value);
}

function randomIfMinusOne(seed: number | undefined): number | undefined {
  return seed === -1 ? undefined : seed;
}
