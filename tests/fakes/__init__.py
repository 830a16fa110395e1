"""Local stand-ins for remote services, bound to 127.0.0.1 only."""

from .openai_server import Behaviour, FakeOpenAIServer, RecordedRequest, fake_openai

__all__ = ["Behaviour", "FakeOpenAIServer", "RecordedRequest", "fake_openai"]
