/*
 * Stand-in declarations of the Foundation API this project's Objective-C++
 * uses, written from Apple's documentation, so that every .mm in the tree
 * is compiled here (clang -fsyntax-only -fobjc-arc, tools/check_objc.py)
 * against the same names and types a Mac has. Declarations only: nothing is
 * linked or run against them. Never Apple's SDK files.
 */
#ifndef KESTREL_STANDIN_FOUNDATION_H
#define KESTREL_STANDIN_FOUNDATION_H

#include <stddef.h>
#include <stdint.h>

#ifndef __OBJC__
#error "Foundation.h (stand-in) is for Objective-C and Objective-C++"
#endif

#ifndef nil
#ifdef __cplusplus
#define nil nullptr
#else
#define nil ((id)0)
#endif
#endif

typedef unsigned long NSUInteger;
typedef long NSInteger;
typedef signed char BOOL;
#define YES ((BOOL)1)
#define NO ((BOOL)0)
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

#ifdef __cplusplus
extern "C" {
#endif
typedef const void* CFTypeRef;
CFTypeRef CFRetain(CFTypeRef cf);
void CFRelease(CFTypeRef cf);
#ifdef __cplusplus
}
#endif

@class NSString;
@class Protocol;

@protocol NSObject
- (BOOL)conformsToProtocol:(Protocol*)aProtocol;
- (BOOL)isKindOfClass:(Class)aClass;
@property(readonly, copy) NSString* description;
@end

__attribute__((objc_root_class))
@interface NSObject <NSObject>
+ (instancetype)alloc;
- (instancetype)init;
@end

@interface NSString : NSObject
+ (instancetype)stringWithUTF8String:(const char*)nullTerminatedCString;
@property(readonly) const char* UTF8String;
@end

@interface NSError : NSObject
@property(readonly, copy) NSString* localizedDescription;
@end

@interface NSDictionary : NSObject
@end

#endif /* KESTREL_STANDIN_FOUNDATION_H */
