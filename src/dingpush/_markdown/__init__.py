"""DingTalk's markdown subset: the parser the renderers share, and the checker built on it."""
