// The Node openai SDK against twinstream's Responses API (tests/server/handlers/test_responses.py
// runs it): streams a response, drops the connection after a few events, resumes it with
// starting_after, and uses responses.stream()'s finalResponse(); prints one JSON object.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });

const head = [];
const stream = await client.responses.create({ model: "any", input: "Hi from Node", stream: true });
for await (const event of stream) {
  head.push(event);
  if (head.length === 6) break; // leaving the loop aborts the request: the connection drops
}
const id = head[0].response.id;
const rest = [];
const resumed = await client.responses.retrieve(id, { stream: true, starting_after: 5 });
for await (const event of resumed) rest.push(event);

const helper = client.responses.stream({ model: "any", input: "Hi from Node" });
const final = await helper.finalResponse();

console.log(
  JSON.stringify({
    numbers: [...head, ...rest].map((event) => event.sequence_number),
    last: rest[rest.length - 1].type,
    resumedText: rest[rest.length - 1].response.output.at(0).content.at(0).text,
    finalText: final.output_text,
    status: final.status,
  }),
);
