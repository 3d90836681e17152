// The ai package's own parsers over bytes twinstream's pure UI message view made
// (tests/server/wire/test_ui_message_chunks.py runs it): reads {"sse": BODY,
// "chunks": [JSON...]} on stdin; parses BODY with parseJsonEventStream and
// uiMessageChunkSchema (what DefaultChatTransport does), fed one byte at a time,
// and validates each of "chunks" (WebSocketChatTransport's chunk field) with the
// schema. Prints {"sse": [{success, value|error}], "chunks": [...]}.
import { parseJsonEventStream, uiMessageChunkSchema } from "ai";
import { safeValidateTypes } from "@ai-sdk/provider-utils";

let input = "";
for await (const piece of process.stdin) input += piece;
const { sse, chunks } = JSON.parse(input);
const bytes = new TextEncoder().encode(sse);
const stream = new ReadableStream({
  start(controller) {
    for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
    controller.close();
  },
});
const show = (result) =>
  result.success ? { success: true, value: result.value } : { success: false, error: String(result.error).slice(0, 300) };
const parsed = [];
for await (const result of parseJsonEventStream({ stream, schema: uiMessageChunkSchema })) {
  parsed.push(show(result));
}
const validated = [];
for (const chunk of chunks) {
  validated.push(show(await safeValidateTypes({ value: JSON.parse(chunk), schema: uiMessageChunkSchema })));
}
process.stdout.write(JSON.stringify({ sse: parsed, chunks: validated }) + "\n");
