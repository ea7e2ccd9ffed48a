"""mlpower.analytics"""
