import fs from "node:fs";
import { Resvg } from "@resvg/resvg-js";
import { expect } from "vitest";

/** The text a chart shows (axis titles, legend entries, tick labels), read from its SVG. */
export function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!.replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">"));
}

/** Parses the SVG with resvg's strict XML parser (it throws on anything malformed) and returns its texts. */
export function parseSvg(file: string): { width: number; height: number; texts: string[] } {
  const svg = fs.readFileSync(file, "utf8");
  expect(svg.startsWith("<svg")).toBe(true);
  const parsed = new Resvg(svg);
  return { width: parsed.width, height: parsed.height, texts: svgTexts(svg) };
}

/** The PNG signature and its IHDR chunk (first, 13 bytes): width and height. */
export function pngSize(file: string): { width: number; height: number } {
  const png = fs.readFileSync(file);
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(png.readUInt32BE(8)).toBe(13);
  expect(png.subarray(12, 16).toString("latin1")).toBe("IHDR");
  expect(png.subarray(-8, -4).toString("latin1")).toBe("IEND");
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}
