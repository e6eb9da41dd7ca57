"""Conversations: archived messages (会话存档), one conversation per customer x staff member
(group chats by roomid), and who owes whom a reply since when."""
