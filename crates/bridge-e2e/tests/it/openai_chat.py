"""Drives Chat Completions through codex-bridge with the official openai SDK; prints one JSON report line.

usage: openai_chat.py BASE_URL   (e.g. http://127.0.0.1:PORT/v1)
"""
import json
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base, api_key="sk-dummy-e2e-key", max_retries=0, timeout=30)
system = "You are a terse assistant. " + " ".join(f"rule {i}: answer in one word." for i in range(400))
messages = [{"role": "system", "content": system}, {"role": "user", "content": "Say pong"}]
headers = {"x-session-id": "py-session-1"}


def cached(usage):
    details = usage.prompt_tokens_details if usage else None
    return details.cached_tokens if details else None


whole = client.chat.completions.create(model="gpt-5.5", messages=messages, extra_headers=headers)
report = {"whole": {"object": whole.object, "content": whole.choices[0].message.content,
                    "finish_reason": whole.choices[0].finish_reason, "cached_tokens": cached(whole.usage)}}

messages += [{"role": "assistant", "content": whole.choices[0].message.content},
             {"role": "user", "content": "Say pong again"}]
again = client.chat.completions.create(model="gpt-5.5", messages=messages, extra_headers=headers)
report["again"] = {"cached_tokens": cached(again.usage)}

messages += [{"role": "assistant", "content": again.choices[0].message.content},
             {"role": "user", "content": "And once more"}]
stream = client.chat.completions.create(model="gpt-5.5", messages=messages, extra_headers=headers, stream=True,
                                        stream_options={"include_usage": True})
first_role, content, finish, usage_chunk = None, "", None, None
for chunk in stream:
    if chunk.usage is not None:
        usage_chunk = chunk
    for choice in chunk.choices:
        if first_role is None:
            first_role = choice.delta.role
        content += choice.delta.content or ""
        finish = choice.finish_reason or finish
report["stream"] = {"first_role": first_role, "content": content, "finish_reason": finish,
                    "usage_chunk_choices": len(usage_chunk.choices) if usage_chunk else None,
                    "cached_tokens": cached(usage_chunk.usage) if usage_chunk else None}

tools = [{"type": "function", "function": {"name": "bash", "description": "Run a shell command",
          "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                         "required": ["command"]}}}]
convo = [{"role": "system", "content": system}, {"role": "user", "content": "TOOLTEST run the marker"}]
call = client.chat.completions.create(model="gpt-5.5", messages=convo, tools=tools, extra_headers=headers)
tc = call.choices[0].message.tool_calls[0]
convo += [call.choices[0].message.model_dump(exclude_none=True),
          {"role": "tool", "tool_call_id": tc.id, "content": "emulator-tool-ok"}]
after = client.chat.completions.create(model="gpt-5.5", messages=convo, tools=tools, extra_headers=headers,
                                       stream=True, stream_options={"include_usage": True})
after_content, after_finish, after_usage = "", None, None
for chunk in after:
    if chunk.usage is not None:
        after_usage = chunk.usage
    for choice in chunk.choices:
        after_content += choice.delta.content or ""
        after_finish = choice.finish_reason or after_finish
report["tool"] = {"finish_reason": call.choices[0].finish_reason, "name": tc.function.name,
                  "arguments": tc.function.arguments, "after_content": after_content,
                  "after_finish_reason": after_finish, "after_cached_tokens": cached(after_usage)}
print(json.dumps(report))
