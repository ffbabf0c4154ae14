// llama.cpp itself on a GGUF file, through node-llama-cpp's prebuilt CPU binary (no build, no download).
// Reads {"model": path, "texts": [...], "prompts": [...], "max_tokens": n, "chats": [[{role, content}]]} as JSON
// on stdin and prints JSON:
// the file's special tokens as llama.cpp reads them, each text's tokens (special tokens parsed, as a chat
// template's output is), and llama.cpp's greedy answer to each prompt, stopping where llama.cpp's own
// end-of-generation test says (tokens, text, and the token it stopped at); and each chat rendered by the Jinja
// template the file carries, as node-llama-cpp's JinjaTemplateChatWrapper renders it (special tokens as text).
import {getLlama, JinjaTemplateChatWrapper, LlamaLogLevel} from "node-llama-cpp";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const ask = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: ask.model});
const t = model.tokens;
const out = {
  bos: t.bos, eos: t.eos, eot: t.eot,
  add_bos: model.tokens.shouldPrependBosToken,
  tokens: [], answers: [], answer_texts: [], stopped: [], chats: [],
};
if ((ask.chats ?? []).length) {
  const wrapper = new JinjaTemplateChatWrapper({template: model.fileInfo.metadata.tokenizer.chat_template,
                                                tokenizer: model.tokenizer});
  const kinds = {system: "system", user: "user"};
  for (const chat of ask.chats) {
    const chatHistory = chat.map((m) => m.role in kinds ? {type: kinds[m.role], text: m.content}
                                                        : {type: "model", response: [m.content]});
    const {contextText} = wrapper.generateContextState({chatHistory});
    out.chats.push(model.detokenize(contextText.tokenize(model.tokenizer), true));
  }
}
for (const text of ask.texts ?? []) out.tokens.push(model.tokenize(text, true));
if ((ask.prompts ?? []).length) {
  const context = await model.createContext({contextSize: ask.context ?? 1024, threads: ask.threads ?? 1,
                                             batchSize: ask.context ?? 1024});
  for (const prompt of ask.prompts) {
    const sequence = context.getSequence();
    const answer = [];
    let stopped = null;
    const evaluation = sequence.evaluate(model.tokenize(prompt, true), {temperature: 0, yieldEogToken: true});
    for await (const token of evaluation) {
      if (model.isEogToken(token)) { stopped = token; break; }
      answer.push(token);
      if (answer.length >= (ask.max_tokens ?? 32)) break;
    }
    out.answers.push(answer);
    out.answer_texts.push(model.detokenize(answer, true));
    out.stopped.push(stopped);
    sequence.dispose();
  }
  await context.dispose();
}
await model.dispose();
process.stdout.write(JSON.stringify(out));
