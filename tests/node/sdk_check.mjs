// The Node openai SDK against twinstream's /v1 (tests/server/test_sdk_clients.py runs it):
// streams text with parameters, a tool call and structured output, and prints
// what arrived as one JSON object on stdout.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });

async function collect(stream) {
  let text = "";
  let finish = null;
  const calls = {};
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? "";
      finish = choice.finish_reason ?? finish;
      for (const call of choice.delta.tool_calls ?? []) {
        calls[call.index] ??= { name: "", arguments: "" };
        calls[call.index].name += call.function?.name ?? "";
        calls[call.index].arguments += call.function?.arguments ?? "";
      }
    }
  }
  return { text, finish, calls: Object.values(calls) };
}

const plain = await collect(
  await client.chat.completions.create({
    model: "up-model",
    messages: [{ role: "user", content: "Hi from Node" }],
    temperature: 0.5,
    seed: 3,
    stop: [" with"],
    stream: true,
  }),
);
const tools = await collect(
  await client.chat.completions.create({
    model: "up-model",
    messages: [{ role: "user", content: "Weather in Paris?" }],
    tools: [
      {
        type: "function",
        function: {
          name: "get_weather",
          parameters: {
            type: "object",
            properties: { city: { type: "string" }, days: { type: "integer" } },
            required: ["city", "days"],
          },
        },
      },
    ],
    stream: true,
  }),
);
const structured = await collect(
  await client.chat.completions.create({
    model: "up-model",
    messages: [{ role: "user", content: "A city" }],
    response_format: {
      type: "json_schema",
      json_schema: {
        name: "city",
        schema: {
          type: "object",
          properties: { name: { type: "string" }, population: { type: "integer" } },
        },
      },
    },
    stream: true,
  }),
);
console.log(
  JSON.stringify({
    text: plain.text,
    finish: plain.finish,
    toolCall: { name: tools.calls[0].name, arguments: JSON.parse(tools.calls[0].arguments) },
    toolFinish: tools.finish,
    json: JSON.parse(structured.text),
  }),
);
