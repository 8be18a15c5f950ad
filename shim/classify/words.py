"""Shell-style word splitting without shlex (HOT, pure)."""


def split_words(text: str) -> list[str] | None:
    """shlex.split for whitespace, quotes and backslashes (shlex would import re, os and enum
    on the hot path, about 12 ms). None on an unbalanced quote or a trailing backslash."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    started = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and text[i + 1 : i + 2] in ('"', "\\"):
                i += 1
                word.append(text[i])
            else:
                word.append(ch)
        elif ch in "\"'":
            quote = ch
            started = True
        elif ch == "\\":
            if i + 1 >= len(text):
                return None
            i += 1
            word.append(text[i])
            started = True
        elif ch.isspace():
            if started:
                words.append("".join(word))
                word, started = [], False
        else:
            word.append(ch)
            started = True
        i += 1
    if quote:
        return None
    if started:
        words.append("".join(word))
    return words
