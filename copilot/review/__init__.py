"""Conversation review for admins: who may see what, the queries behind each admin page.

Nothing here knows about HTTP or Chainlit: `copilot.web.admin` renders these results, and
`copilot bench admin` times the same queries. Every query carries the reviewer's `Reach`
in its WHERE clause, so a Department Admin's pages and exports never hold another
department's rows.
"""
