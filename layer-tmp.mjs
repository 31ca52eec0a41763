import fs from "node:fs";
import { getLlama, LlamaCompletion } from "node-llama-cpp";
const mainCpu = () => { const s = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8").split(") ")[1].split(" "); return (Number(s[11]) + Number(s[12])) * 10; };
const llama = await getLlama({ gpu: false });
const model = await llama.loadModel({ modelPath: process.argv[2] });
const context = await model.createContext({ contextSize: 2048, sequences: 4, threads: 2 });
const N = Number(process.argv[3] ?? 200);
const prompt = model.tokenize("Once upon a time, there was a little girl named Lily.", false);
async function viaCompletion() {
  const seq = context.getSequence(); const c = new LlamaCompletion({ contextSequence: seq });
  let n = 0; await c.generateCompletion(prompt, { maxTokens: N, temperature: 0, onToken: (t) => { n += t.length; } });
  seq.dispose(); return n;
}
async function viaEvaluate() {
  const seq = context.getSequence(); let n = 0;
  for await (const token of seq.evaluate(prompt, { temperature: 0 })) { n++; if (n >= N || model.isEogToken(token)) break; }
  seq.dispose(); return n;
}
for (const f of [viaCompletion, viaEvaluate]) await f();
const res = { viaCompletion: [], viaEvaluate: [] };
for (let r = 0; r < 6; r++) for (const f of (r % 2 ? [viaEvaluate, viaCompletion] : [viaCompletion, viaEvaluate])) {
  const c0 = mainCpu(); const t0 = performance.now(); const n = await f(); const ms = performance.now() - t0; const c = mainCpu() - c0;
  res[f.name].push([n / ms * 1000, c * 1000 / n]);
}
for (const [k, v] of Object.entries(res)) console.log(k, "t/s", v.map((x) => x[0].toFixed(0)).join(" "), "| main-thread µs/token", v.map((x) => x[1].toFixed(0)).join(" "));
