"""The chat template: Zephyr's by default (as zephyr-7b-beta was trained), or the model's own.

The Zephyr string is the alignment-handbook's, byte for byte (two spaces before `+` on the
assistant line), so a model trained here renders prompts exactly as the published recipe did.
The handbook also put an empty system turn in front of dialogues that had none; that is kept
as `auto_insert_empty_system_msg`, on by default with this template.
"""

from __future__ import annotations

from typing import Any

from warehouse.errors import BadInputError

ZEPHYR_CHAT_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"
)

Message = dict[str, Any]


def is_zephyr(setting: str) -> bool:
    return setting.strip().lower() == "zephyr" or setting == ZEPHYR_CHAT_TEMPLATE


def check_setting(setting: str, where: str) -> None:
    """Fail early on a chat_template that is neither a name we know nor a Jinja template."""
    name = setting.strip().lower()
    if name in ("zephyr", "model"):
        return
    if "{%" not in setting and "{{" not in setting:
        raise BadInputError(
            f"{where}: chat_template {setting[:40]!r}: expected 'zephyr', 'model' "
            "(the tokenizer's own) or a Jinja template string"
        )


def resolve_template(setting: str, tokenizer: Any, model_label: str) -> str:
    """The template string to put on the tokenizer."""
    name = setting.strip().lower()
    if name == "zephyr":
        return ZEPHYR_CHAT_TEMPLATE
    if name == "model":
        own = getattr(tokenizer, "chat_template", None)
        if not own:
            raise BadInputError(
                f"chat_template: model: {model_label} has no chat template of its own; "
                "use chat_template: zephyr or give a template"
            )
        return str(own)
    return setting


def apply_template(tokenizer: Any, setting: str, model_label: str) -> str:
    """Set the template on the tokenizer (and an eos token, which Zephyr's needs)."""
    template = resolve_template(setting, tokenizer, model_label)
    if "eos_token" in template and not getattr(tokenizer, "eos_token", None):
        raise BadInputError(f"{model_label}: the tokenizer has no eos token for the template")
    tokenizer.chat_template = template
    if getattr(tokenizer, "pad_token", None) is None:
        tokenizer.pad_token = tokenizer.eos_token
    return template


def with_system_turn(messages: list[Message]) -> list[Message]:
    """Messages with an empty system turn first, unless they already start with one."""
    if messages and messages[0].get("role") == "system":
        return messages
    return [{"role": "system", "content": ""}, *messages]
