"""Prompt templates carrying Ovi's tokens, and the code that renders, checks and parses them."""

from prompts.render import PromptError, RenderedPrompt, render_scene_prompt, template_for
from prompts.tokens import ParsedPrompt, find_tokens, parse_prompt

__all__ = [
    "ParsedPrompt",
    "PromptError",
    "RenderedPrompt",
    "find_tokens",
    "parse_prompt",
    "render_scene_prompt",
    "template_for",
]
