/**
 * What a model can do, read from its GGUF header as ollama lists it (`/api/show`, `ollama show`):
 * clients filter model pickers by it. A pooling model (BERT-like) embeds; a generative one completes,
 * calls tools when its chat template takes tools, fills in the middle ("insert") when its vocabulary has
 * the tokens for it, and thinks when the template renders thoughts (Qwen3's and DeepSeek R1's `<think>`,
 * Mistral's `[THINK]`, `reasoning_content`, an `enable_thinking` switch, gpt-oss's `reasoning_effort`).
 */
export function modelCapabilities(facts: { chatTemplate: string | undefined; pooling: boolean; fillInMiddle?: boolean } | undefined): string[] {
  if (facts?.pooling) return ["embedding"];
  const template = facts?.chatTemplate ?? "";
  return [
    "completion",
    ...(/\btools\b/.test(template) ? ["tools"] : []),
    // Fill in the middle (a suffix): code models whose vocabulary has the tokens for it.
    ...(facts?.fillInMiddle ? ["insert"] : []),
    ...(/<think>|\[THINK\]|reasoning_content|enable_thinking|reasoning_effort/.test(template) ? ["thinking"] : []),
  ];
}
