"""Chainlit entry point: only wires the handlers of `copilot.web` (see copilot/web/chat.py)."""

import chainlit as cl
from chainlit.oauth_providers import get_configured_oauth_providers
from chainlit.server import app as chainlit_app
from chainlit.server import sio

from copilot.web import auth, chat, upload_offers
from copilot.web.chat_guard import ChatRouteGuard, guard_socket
from copilot.web.content_security import ImagePolicy
from copilot.web.runtime import current

cl.data_layer(chat.data_layer)
cl.password_auth_callback(auth.password_sign_in)
if current().settings.auth_header:
    cl.header_auth_callback(auth.header_sign_in)
if get_configured_oauth_providers():
    cl.oauth_callback(auth.oauth_sign_in)
cl.on_logout(auth.sign_out)
cl.set_starters(chat.starters)
cl.set_chat_profiles(chat.chat_profiles)
cl.on_chat_start(chat.start_chat)
cl.on_chat_resume(chat.resume_chat)
cl.on_shared_thread_view(chat.may_read_shared)
cl.on_message(chat.on_message)
cl.action_callback(chat.REGENERATE)(chat.regenerate)
cl.action_callback(upload_offers.REPLACE)(chat.replace_upload)
cl.action_callback(upload_offers.KEEP_BOTH)(chat.keep_both_uploads)
cl.on_chat_end(chat.end_chat)

# Checks Chainlit's routes and socket lack (copilot/web/chat_guard.py), and no remote
# images on the chat's pages. Chainlit's app is a process-wide singleton and this module
# is loaded into it once, before it starts.
chainlit_app.add_middleware(ChatRouteGuard)
chainlit_app.add_middleware(ImagePolicy)
guard_socket(sio)
