"""agents/mechanisms"""
