"""Typed application state keys (aiohttp ``web.AppKey``)."""

from __future__ import annotations

from aiohttp import web

from bot.config import Settings
from bot.gateway import Gateway
from scheduler.service import SchedulerService
from store.db import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
GATEWAY = web.AppKey("gateway", Gateway)
SCHEDULER = web.AppKey("scheduler", SchedulerService)
