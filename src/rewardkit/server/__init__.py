"""rewardkit.server"""
