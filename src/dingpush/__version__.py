__title__ = "dingpush"
__description__ = "Push messages into DingTalk groups and to DingTalk users."
__version__ = "0.1.0"
